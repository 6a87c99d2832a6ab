"""The target: Bellwether Bikes' support bot, its knowledge base and its HTTP server."""

from doubleedge.target.bot import BASE_SYSTEM_PROMPT, BLOCKED_REPLY, Defense, SupportBot, Turn
from doubleedge.target.secrets import derive_secret, learner_id

__all__ = ["BASE_SYSTEM_PROMPT", "BLOCKED_REPLY", "Defense", "SupportBot", "Turn", "derive_secret", "learner_id"]
