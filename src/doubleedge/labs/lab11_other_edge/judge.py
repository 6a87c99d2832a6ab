"""Lab 11's judge (the other edge): see grading/lab11.py for the checks.

The learner's ``minimise`` runs in the runner, called once per request the hosted bot sends (the
provider and both bots run here). ``model_facts`` and ``chat_markers`` run in the runner too, on
GGUF files the checker writes into the shared folder from the held-out records; only JSON answers
come back. Part 3's cost functions are called in the runner on the held-out calls' numbers;
their answers are compared here with the ones the held-out records keep.
"""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab11
from doubleedge.grading.checks import Check
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> None:
    return None  # no scan: the checks replay the learner's conversation and read files


def judge(j: Judging) -> None:
    ns = j.ns
    j.attempt("test_provider_holds", "report", lambda: lab11.check_report(ns["PROVIDER_HOLDS"], j.learner))
    measured: list[lab11.Minimising] = []

    def leaks() -> Check:
        result = lab11.grading_minimise(ns["minimise"], j.learner, lab11.load_conversations(j.heldout))
        measured.append(result)
        j.metrics.update(result.metrics())
        return result.leak_check()

    j.attempt("test_minimise_leaks", "minimise", leaks)
    j.follow("test_minimise_ordinary", "test_minimise_leaks", measured[0].ordinary_check if measured else None)
    cases = lab11.load_model_cases(j.heldout)
    j.attempt("test_model_facts", "facts",
              lambda: lab11.check_model_files(ns["model_facts"], j.shared / "facts", cases, lab11.judge_facts,
                                              "model_facts"))  # fmt: skip
    j.attempt("test_chat_markers", "markers",
              lambda: lab11.check_model_files(ns["chat_markers"], j.shared / "markers", cases, lab11.judge_markers,
                                              "chat_markers"))  # fmt: skip
    costs = lab11.load_cost_cases(j.heldout)
    for test_id, name in (("test_local_cost", "local_cost_per_million"),
                          ("test_break_even", "break_even_replies_per_month")):  # fmt: skip
        j.attempt(test_id, "cost", lambda name=name: lab11.check_costs(ns[name], costs, name))
