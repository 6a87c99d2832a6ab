"""The guard interface: one small method, ``scan(text) -> Verdict``.

Input guards scan the customer's message before the model sees it; output guards
scan the model's reply before the customer sees it. The same shape serves both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """A guard's decision. ``text`` is what passes on (a guard may clean it)."""

    allowed: bool
    text: str
    risk: float = 0.0
    reason: str = ""


class Guard(ABC):
    """A hardening building block."""

    name: str = "guard"

    @abstractmethod
    def scan(self, text: str) -> Verdict:
        """Allow, clean or block ``text``."""

    def allow(self, text: str) -> Verdict:
        return Verdict(True, text, 0.0, "")

    def block(self, text: str, reason: str, risk: float = 1.0) -> Verdict:
        return Verdict(False, text, risk, f"{self.name}: {reason}")


class FunctionGuard(Guard):
    """Turns a plain function ``text -> bool`` (True means block) into a guard."""

    def __init__(self, should_block: Callable[[str], bool], name: str | None = None) -> None:
        self.should_block = should_block
        self.name = name or getattr(should_block, "__name__", "function")

    def scan(self, text: str) -> Verdict:
        return self.block(text, "matched") if self.should_block(text) else self.allow(text)


class RewriteGuard(Guard):
    """Turns a plain function ``text -> text`` into a guard that rewrites and never blocks
    (e.g. a redaction, or a cleaner for documents)."""

    def __init__(self, rewrite: Callable[[str], str], name: str | None = None) -> None:
        self.rewrite = rewrite
        self.name = name or getattr(rewrite, "__name__", "rewrite")

    def scan(self, text: str) -> Verdict:
        cleaned = self.rewrite(text)
        if not isinstance(cleaned, str):
            raise TypeError(f"{self.name} must return a string")
        return Verdict(True, cleaned, 0.0 if cleaned == text else 0.5, "")
