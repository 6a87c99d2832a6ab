"""The result of one check: shared by the labs' check modules (pure, no lab kit imports)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    passed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed
