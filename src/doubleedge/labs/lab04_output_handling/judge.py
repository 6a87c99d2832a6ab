"""Lab 04's judge (improper output handling): see grading/lab04.py for the checks and thresholds.

``render`` and ``order_query`` take and return plain data, so the checker calls them
over the pipe; ``order_query``'s ``(statement, params)`` arrives as a JSON list, which
the checks and the web chat accept like a tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doubleedge.grading import lab04
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> Path:
    return lab04.baseline_scan(workdir).report_path


def function(j: Judging, name: str) -> Callable:
    """The learner's function ``name`` (a remote callable); a value that is data cannot be called."""
    value = j.ns[name]
    if not callable(value):
        raise ValueError(f"{name} must be a function")
    return value


def judge(j: Judging) -> None:
    from doubleedge.evaluate import load_ordinary
    from doubleedge.scan import read_report

    ns, learner = j.ns, j.learner
    j.attempt("test_exfil", "exfil", lambda: lab04.check_exfil_message(ns["MY_EXFIL_MESSAGE"], learner))
    j.attempt("test_xss", "xss", lambda: lab04.check_xss_message(ns["MY_XSS_MESSAGE"], learner))
    j.attempt("test_sqli", "sqli", lambda: lab04.check_sql_message(ns["MY_SQL_MESSAGE"], learner))
    j.attempt("test_scan_reading", "scan_answers",
              lambda: lab04.check_overall_asr(ns["OVERALL_ASR"], read_report(j.baseline)))  # fmt: skip
    cases = lab04.load_cases(j.heldout)
    j.attempt("test_render", "hardening", lambda: lab04.check_render(function(j, "render"), cases))
    j.attempt("test_order_query", "hardening", lambda: lab04.check_order_query(function(j, "order_query"), cases))
    j.attempt("test_csp", "hardening", lambda: lab04.check_csp(ns["CONTENT_SECURITY_POLICY"]))

    def measure() -> lab04.Hardening:
        # a render that stopped answering shows as "unshowable", not as an error: raise_if_broken
        ordinary = load_ordinary(j.ordinary)
        return lab04.evaluate_hardening(function(j, "render"), function(j, "order_query"), learner, ordinary=ordinary)

    result = j.evaluate(("test_hardening_asr", "test_hardening_benign"), "hardening", measure)
    if result is not None:
        j.attacks.update({"garak": result.garak.probe_rates()})
