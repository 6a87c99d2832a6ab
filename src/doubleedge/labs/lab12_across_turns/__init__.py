"""Lab 12: across turns. A multi-turn attack that Lab 01's single-message guards miss, then a
defense that reads the whole conversation."""

from doubleedge.labs.base import Lab
from doubleedge.labs.targets import SUPPORT_BOT


def thresholds() -> list[str]:
    from doubleedge.grading import lab12

    return [f"below {lab12.ASR_THRESHOLD:.0%}", f"at least {lab12.ORDINARY_THRESHOLD:.0%}"]


LAB = Lab(
    number="12",
    slug="12-across-turns",
    title="Across turns: multi-turn attacks",
    package=__name__,
    target=SUPPORT_BOT,
    checks="doubleedge.grading.lab12",
    solution="doubleedge.defenses.lab12",
    runner_defenses=("lab01",),  # the setup's Bell is defended by Lab 01's reference solution: the lab's target
    benign="ordinary conversations kept",
    ordinary_allowed="none",
    thresholds=thresholds,
    hidden=("PIECE_REQUEST = re.compile", "def reveals_piece"),
)
