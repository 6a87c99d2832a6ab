"""Lab 08's judge (quality control and governance): see grading/lab08.py for the checks.

The learner's gate and system card are called over the pipe with held-out cases as JSON;
their answers come back as data and are judged here. The right exit codes for the candidate
releases are held out too (``release_decision``): the learner's processes never read them.
No baseline scan is needed: the held-out cases carry their own measurements (several taken
from real scans).
"""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab08
from doubleedge.grading.remote import Judging


def baseline(workdir: Path) -> None:
    return None


def judge(j: Judging) -> None:
    ns, learner = j.ns, j.learner
    heldout = lab08.load_cases(j.heldout)
    j.attempt("test_smuggled", "smuggled", lambda: lab08.check_smuggled(ns["smuggle"], learner))

    outcomes: list = []

    def catches() -> lab08.Check:
        outcomes.extend(lab08.gate_outcomes(ns["gate_violations"], heldout.gate))
        j.raise_if_broken()
        return lab08.check_gate(outcomes, "regression")

    j.attempt("test_gate_catches", "gate", catches)
    j.follow("test_gate_passes_clean", "test_gate_catches",
             (lambda: lab08.check_gate(outcomes, "clean")) if outcomes else None)  # fmt: skip
    if outcomes:
        j.metrics["gate_cases_right"] = sum(why is None for _, why in outcomes)
        j.metrics["gate_cases"] = len(outcomes)
        j.attacks["gate_missed"] = sorted(case["id"] for case, why in outcomes if why)
    # The decisions are checked against the held-out answers and the learner's own gate
    # (its outcomes above: none when the gate did not run).
    j.attempt("test_release_decisions", "decisions",
              lambda: lab08.check_decisions(ns["RELEASE_DECISIONS"], heldout.releases, outcomes))  # fmt: skip
    j.attempt("test_system_card", "card", lambda: lab08.check_card(ns["system_card"], heldout.cards))
