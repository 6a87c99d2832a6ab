"""Length limits: support questions are short, jailbreak prompts are long."""

from __future__ import annotations

from doubleedge.guards.base import Guard, Verdict


class MaxLength(Guard):
    """Blocks messages longer than ``limit`` characters.

    Cheap and effective against long role-play jailbreaks (DAN prompts run to
    thousands of characters) and a brake on unbounded consumption (OWASP LLM10).
    The cost: a customer who pastes a long email is refused.
    """

    name = "max_length"

    def __init__(self, limit: int = 600) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit

    def scan(self, text: str) -> Verdict:
        if len(text) > self.limit:
            return self.block(text, f"{len(text)} characters > {self.limit}")
        return self.allow(text)
