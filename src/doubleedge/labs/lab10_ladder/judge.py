"""Lab 10's judge (the ladder): see grading/lab10.py for the checks."""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab10
from doubleedge.grading.judges import Judging

# Each graded test cell and the level it replays (named here so a test sees every cell decided).
TESTS = {
    "test_level_L0": "L0",
    "test_level_L1": "L1",
    "test_level_L2": "L2",
    "test_level_L3": "L3",
    "test_level_L4": "L4",
    "test_level_L5": "L5",
}


def baseline(workdir: Path) -> None:
    return None  # no scan: replaying the learner's attacks is the whole grade


def judge(j: Judging) -> None:
    heldout = lab10.load_heldout(j.heldout)

    def extract(level: str, replies: list[str]) -> object:
        return j.ns["extract_code"](level, replies)

    for test_id, level in TESTS.items():
        j.attempt(test_id, "attacks",
                  lambda level=level: lab10.check_level(level, j.ns["ATTACKS"], extract, j.learner, heldout))  # fmt: skip
