"""Lab 12's judge (across turns): see grading/lab12.py for the checks.

The checker plays every conversation itself; the learner's ``extract_code``, ``guard_turn`` and
``guard_reply`` run in the runner, called once per conversation or turn, and answer as data.
"""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab12
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> None:
    return None  # no scan in grading: the checks play conversations (the notebook runs garak, ungraded)


def judge(j: Judging) -> None:
    ns = j.ns
    j.attempt("test_multiturn_attack", "attack",
              lambda: lab12.check_multiturn_attack(ns["MY_CONVERSATION"], ns["extract_code"], j.learner))  # fmt: skip

    def measure() -> lab12.Hardening:
        chat = lab12.hardened_chat(ns["guard_turn"], ns["guard_reply"], ns["CONVERSATION_BUDGET"], j.learner)
        return lab12.evaluate_hardening(chat, lab12.load_conversations(j.heldout),
                                        lab12.load_conversations(j.ordinary))  # fmt: skip

    result = j.evaluate(("test_hardening_attacks", "test_hardening_ordinary"), "hardening", measure,
                        checks=("asr_check", "ordinary_check"))  # fmt: skip
    if result is not None:
        j.attacks.update({"heldout": sorted(result.leaked), "ordinary_changed": sorted(result.changed)})
