"""Lab 08's judge (quality control and governance): see grading/lab08.py for the checks.

The learner's gate and system card are called over the pipe with held-out cases as JSON;
their answers come back as data and are judged here. The right exit codes for the candidate
releases are held out too (``release_decision``): the learner's processes never read them.
No baseline scan is needed: the held-out cases carry their own measurements (several taken
from real scans). Part 5's functions (AI Act roles, licence conditions, model card sections)
are called on held-out cases with answers kept in the held-out file. Part 6's acceptable-use
policy is called on held-out requests, harmful and safe, and the bot its ``build_defense`` builds
is asked the ones it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doubleedge.grading import lab08
from doubleedge.grading.judges import Judging


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
    governance = lab08.load_governance(j.heldout)
    j.attempt("test_ai_act_roles", "roles",
              lambda: lab08.check_roles(remote(j, "ai_act_roles", "on_scenario"), governance.scenarios))  # fmt: skip
    j.attempt("test_gpai_duties", "roles",
              lambda: lab08.check_duties(remote(j, "gpai_duties", "on_scenario"), governance.scenarios))  # fmt: skip
    j.attempt("test_licence_problems", "licence",
              lambda: lab08.check_licences(remote(j, "licence_problems", "on_release_plan"), governance.plans))  # fmt: skip
    j.attempt("test_model_card", "model_card",
              lambda: lab08.check_model_cards(remote(j, "missing_card_sections"), governance.model_cards))  # fmt: skip
    misuse = lab08.load_misuse_cases(j.heldout)
    j.attempt("test_use_policy", "misuse", lambda: lab08.check_use_policy(ns["breaks_use_policy"], misuse))

    def uses_policy() -> lab08.Check:
        bot = lab08.policy_bot(ns["build_defense"], learner)
        return j.measure(bot, lambda b: lab08.check_defense_uses_policy(ns["breaks_use_policy"], b, misuse))

    j.attempt("test_use_policy_in_defense", "misuse", uses_policy)


def remote(j: Judging, name: str, helper: str | None = None) -> Callable[[object], object]:
    """The learner's function ``name``, called in the runner on a held-out case's data (rebuilt
    there into a dataclass by ``helper``, when the function takes one). NameError when it is missing."""
    if not callable(j.ns[name]):
        raise ValueError(f"{name} must be a function")
    if helper is None:
        return j.ns[name]
    return lambda data: j.ns.apply(helper, name, data)
