"""Lab 06's judge (supply chain): see grading/lab06.py for the checks.

The learner's ``read_marker``, ``safe_load`` and ``template_is_trusted`` run in the runner, on model files that
the checker builds in the shared folder (bound at the same absolute path in both sandboxes, so the marker
paths baked into the poisoned pickles are valid where they are loaded, and the markers
they create are visible here afterwards). Only JSON outcomes come back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from doubleedge.grading import lab06
from doubleedge.grading.checks import Check
from doubleedge.grading.judges import Judging, RemoteError
from doubleedge.grading.sharedfolder import LINK_NOTE, PlantedLink, fresh_folder
from doubleedge.labs import get_lab

# Clean cases first: if safe_load stops answering on a poisoned file, the loads are judged already.
ORDER = {"load": 0, "either": 1, "refuse": 2}


def baseline(workdir: Path) -> Path:
    """The graded GGUF copies (trimmed clean, tampered, held-out tampered), the same for every learner:
    written once per grading run, bound read-only into each checker, which copies them for the learner."""
    return lab06.write_template_copies(workdir, get_lab(lab06.LAB).heldout_attacks)


def judge(j: Judging) -> None:
    ns = j.ns
    # Plain values first, then the learner's functions: one that kills the runner must not cost these.
    j.attempt("test_scan_findings", "scan_answers", lambda: _scan_findings(j))
    j.attempt("test_scan_blind_spots", "scan_answers", lambda: lab06.check_blind_spots(ns["MISSED_VARIANTS"]))
    # read_marker reads a poisoned file built here, whose text only the grading secret derives
    j.attempt("test_marker", "marker", _unless_linked(lambda: lab06.check_read_marker(ns["read_marker"], j.shared, j.learner)))
    loads: list[Check] = []

    def refusals() -> Check:
        cases = sorted(lab06.grading_cases(fresh_folder(j.shared, "cases-"), j.heldout), key=lambda c: ORDER[c.expect])
        outcomes, failure = _outcomes(j, cases)
        markers = lab06.marker_state(cases)  # after every case ran
        loads.append(failure["load"] if "load" in failure else lab06.judge_loads(cases, outcomes, markers))
        return failure["refuse"] if "refuse" in failure else lab06.judge_refusals(cases, outcomes, markers)

    j.attempt("test_safe_load_refuses", "safe_load", _unless_linked(refusals))
    j.follow("test_safe_load_loads", "test_safe_load_refuses", (lambda: loads[0]) if loads else None)
    j.attempt("test_template_is_trusted", "template_check", _unless_linked(lambda: _templates(j)))


def _unless_linked(check: Callable[[], Check]) -> Callable[[], Check]:
    """``check``, failed with the link note if learner code planted a link among the files built for it."""

    def checked() -> Check:
        try:
            return check()
        except PlantedLink:
            return Check(False, LINK_NOTE)

    return checked


def _templates(j: Judging) -> Check:
    """The learner's template_is_trusted, called on GGUF copies written in the shared folder;
    a call that raises (or times out) counts as distrust, judged like False."""
    cases = lab06.template_cases(fresh_folder(j.shared, "templates-"), j.heldout, j.baseline)
    check = j.ns["template_is_trusted"]
    answers: dict[str, object] = {}
    for case in cases:
        try:
            answers[case.id] = check(str(case.path))
        except RemoteError as exc:
            answers[case.id] = {"raised": "NotImplementedError" if "NotImplementedError" in str(exc) else "error"}
    return lab06.judge_templates(cases, answers)


def _scan_findings(j: Judging) -> Check:
    with tempfile.TemporaryDirectory(prefix="lab06-scan-") as scratch:  # the checker's own files
        summary = lab06.reference_scan(scratch)
    return lab06.check_scan_findings(j.ns["FLAGGED_FILES"], j.ns["PAYLOAD_GLOBAL"], summary)


def _outcomes(j: Judging, cases: list) -> tuple[dict[str, dict], dict[str, Check]]:
    """Each case's outcome, one call each (each under the call limit), and the failed tests.

    At the first call that fails (a hang, a missing function) the rest are not tried, so that
    a run stays within its time: the refusals fail, and the loads too unless all clean cases ran.
    """
    outcomes: dict[str, dict] = {}
    for position, case in enumerate(cases):
        try:
            outcome = j.ns.apply("outcome_of", "safe_load", str(case.path), case.sha256)
        except RemoteError as exc:
            what = "is not defined as a function" if str(exc) == "missing" else str(exc)
            failed = Check(False, f"safe_load {what} (on {case.spec.note or case.id})")
            clean_untried = any(c.expect != "refuse" for c in cases[position:])
            return outcomes, {"refuse": failed, **({"load": failed} if clean_untried else {})}
        outcomes[case.id] = outcome if isinstance(outcome, dict) else {}
    return outcomes, {}
