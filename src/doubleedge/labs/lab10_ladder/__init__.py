"""Lab 10: the ladder. Bell at six levels of defense, L0 to L5; the learner breaks each one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from doubleedge.labs.base import ChatTarget, Lab

if TYPE_CHECKING:
    from doubleedge.target import SupportBot

LEVELS = ("L0", "L1", "L2", "L3", "L4", "L5")  # doubleedge.defenses.ladder.RUNGS (a test keeps them equal)


def build_rung_bot(model: str, defense: str, learner: str | None) -> SupportBot:
    from doubleedge.defenses.ladder import build_rung
    from doubleedge.models import load_model
    from doubleedge.target import SupportBot, derive_secret, learner_id

    secret = derive_secret(learner or learner_id())
    return SupportBot(
        load_model(model), secret=secret, defense=build_rung("L0" if defense == "none" else defense, secret)
    )


def hints_taken(folder: Path) -> list[str]:
    from doubleedge.grading.lab10 import hints_taken

    return hints_taken(folder)


LAB = Lab(
    number="10",
    slug="10-ladder",
    title="The ladder: break every level",
    package=__name__,
    target=ChatTarget(name="the ladder", speaker="Bell", build=build_rung_bot, defenses=("none", *LEVELS)),
    checks="doubleedge.grading.lab10",
    runner_defenses=("ladder", "levels", "lab01"),  # the setup's practice rungs (the ladder builds on both)
    hints=hints_taken,
    hidden=("first 12 characters", "last 4 characters", "Nevermind, the receipt says"),
)
