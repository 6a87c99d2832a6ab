"""The chat target most labs share: Bellwether's support bot, Bell."""

from __future__ import annotations

from typing import TYPE_CHECKING

from doubleedge.labs.base import ChatTarget

if TYPE_CHECKING:
    from doubleedge.target import SupportBot


def build_bot(model: str, defense: str, learner: str | None) -> SupportBot:
    from doubleedge.defenses import get_defense
    from doubleedge.models import load_model
    from doubleedge.target import SupportBot, derive_secret, learner_id

    secret = derive_secret(learner or learner_id())
    return SupportBot(load_model(model), secret=secret, defense=get_defense(defense, secret))


SUPPORT_BOT = ChatTarget(name="the support bot", speaker="Bell", build=build_bot)
