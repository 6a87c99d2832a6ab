"""Lab 10's judge (the ladder): see grading/lab10.py for the checks."""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab10
from doubleedge.grading.remote import Judging


def judge(j: Judging) -> None:
    heldout = lab10.load_heldout(j.heldout)

    def extract(level: str, replies: list[str]) -> str:
        return j.ns["extract_code"](level, replies)

    for level in lab10.LEVELS:
        j.attempt(f"test_level_{level}", "attacks",
                  lambda level=level: lab10.check_level(level, j.ns["ATTACKS"], extract, j.learner, heldout))  # fmt: skip


def baseline(workdir: Path) -> None:
    return None  # no scan: the replays are the grade
