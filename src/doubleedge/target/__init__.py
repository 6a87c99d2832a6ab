"""The target: Bellwether Bikes' support bot, its knowledge base, its customers and its HTTP server."""

from doubleedge.target.bot import BASE_SYSTEM_PROMPT, BLOCKED_REPLY, Defense, Document, SupportBot, Turn
from doubleedge.target.records import derive_canary
from doubleedge.target.secrets import derive_secret, learner_id

__all__ = [
    "BASE_SYSTEM_PROMPT",
    "BLOCKED_REPLY",
    "Defense",
    "Document",
    "SupportBot",
    "Turn",
    "derive_canary",
    "derive_secret",
    "learner_id",
]
