"""Lab 12: across turns. A multi-turn attack that Lab 01's single-message guards miss, then a
defense that reads the whole conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doubleedge.labs.base import ChatTarget, Lab
from doubleedge.scan.conversations import multiturn_spec


def build_bell(model: str, defense: str, learner: str | None) -> Any:
    """The lab's target: Bell behind Lab 01's single-message defense, keeping conversations;
    with ``lab12``, the reference conversation-level defense in front of it."""
    from doubleedge.defenses import lab01, lab12
    from doubleedge.models import load_model
    from doubleedge.target import SupportBot, derive_secret, learner_id
    from doubleedge.target.guarded_chat import GuardedChat

    secret = derive_secret(learner or learner_id())
    bot = SupportBot(load_model(model), secret=secret, defense=lab01.build_course_guard_defense(secret))
    return GuardedChat(bot, lab12.build_conversation_defense(secret)) if defense == "lab12" else bot


def scan_conversations(app: Any, spec: Any, workdir: Path | None) -> Any:
    from doubleedge.scan.conversations import scan_bot

    return scan_bot(app, workdir, spec=spec)


def scan_conversations_url(chat_url: str, spec: Any, workdir: Path) -> Any:
    from doubleedge.scan.conversations import scan_chat_url

    return scan_chat_url(chat_url, spec, workdir)


def thresholds() -> list[str]:
    from doubleedge.grading import lab12

    return [f"below {lab12.ASR_THRESHOLD:.0%}", f"at least {lab12.ORDINARY_THRESHOLD:.0%}"]


LAB = Lab(
    number="12",
    slug="12-across-turns",
    title="Across turns: multi-turn attacks",
    package=__name__,
    # "none": no conversation-level defense; Lab 01's single-message one is the lab's starting point.
    target=ChatTarget(
        name="Bell behind Lab 01's single-message defense",
        speaker="Bell",
        build=build_bell,
        defenses=("none", "lab12"),
        scan=scan_conversations,
        scan_url=scan_conversations_url,
    ),
    checks="doubleedge.grading.lab12",
    solution="doubleedge.defenses.lab12",
    defense="lab12",
    runner_defenses=("lab01",),  # the setup's Bell is defended by Lab 01's reference solution: the lab's target
    scan=multiturn_spec(),
    benign="ordinary conversations kept",
    ordinary_allowed="none",
    thresholds=thresholds,
    hidden=("PIECE_REQUEST = re.compile", "def reveals_piece"),
)
