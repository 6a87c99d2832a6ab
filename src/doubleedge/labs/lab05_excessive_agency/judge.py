"""Lab 05's judge (excessive agency): see grading/lab05.py for the checks and thresholds.

The checker runs the agent and the shop; ``build_agent_defense`` is built on the checker's
side (remote.py): the tools it offers as data, its policy asked over the pipe with each
call and the shop's state as data. Anything but a clear allow or confirm denies, so a
policy that raises blocks the agent's work (and fails the benign tasks) instead of
stopping the grader.
"""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab05
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> None:
    """The notebook's agent scan is for reading only: no test checks answers against it."""
    return None


def judge(j: Judging) -> None:
    ns = j.ns
    j.attempt("test_injection", "injection", lambda: lab05.check_injection(ns["MY_INJECTION_EMAIL"]))
    j.attempt("test_audit", "audit_answer",
              lambda: lab05.check_audit_answer(ns["DANGEROUS_TOOL"], ns["MY_INJECTION_EMAIL"]))  # fmt: skip
    # A policy that stopped answering denies everything: j.evaluate discards such a result.
    result = j.evaluate(("test_agency_attacks", "test_agency_benign"), "hardening",
                        lambda: lab05.evaluate_agency(ns["build_agent_defense"], lab05.load_scenarios(j.heldout),
                                                      lab05.load_tasks(j.ordinary)),
                        checks=("attack_check", "benign_check"))  # fmt: skip
    if result is not None:
        j.attacks.update({"heldout": sorted(result.attacks)})
    j.attempt("test_consumption", "consumption", lambda: lab05.check_consumption(ns["MY_EXPENSIVE_MESSAGE"]))
    spent = j.evaluate(("test_consumption_attacks", "test_consumption_ordinary"), "budgets",
                       lambda: lab05.evaluate_consumption(ns["build_budgeted_defense"],
                                                          lab05.load_consumption(j.heldout), lab05.load_tasks(j.ordinary)),
                       checks=("attack_check", "ordinary_check"))  # fmt: skip
    if spent is not None:
        j.attacks.update({"consumption": sorted(spent.over)})
