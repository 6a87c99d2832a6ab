"""The one interface every model backend implements: chat messages in, text out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat turn, as open-weight chat templates and OpenAI-style APIs both see it."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError("content must be a string")


class ModelError(RuntimeError):
    """A backend could not produce a reply (timeout, connection refused, empty reply...)."""


class ChatModel(ABC):
    """A chat model backend.

    Backends differ in how they run (a rule engine, transformers on CPU, an HTTP
    server), never in how the bot calls them.
    """

    name: str = "model"

    @abstractmethod
    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        """Return the assistant's reply to ``messages`` (system first, user last)."""
