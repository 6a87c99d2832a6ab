"""Hardening building blocks. Each guard has one method: ``scan(text) -> Verdict``."""

from doubleedge.guards.base import FunctionGuard, Guard, Verdict
from doubleedge.guards.encoding import EncodedPayload
from doubleedge.guards.injection import DEFAULT_PATTERNS, InjectionHeuristics
from doubleedge.guards.leak import SecretLeak, contains_secret
from doubleedge.guards.length import MaxLength

__all__ = [
    "DEFAULT_PATTERNS",
    "EncodedPayload",
    "FunctionGuard",
    "Guard",
    "InjectionHeuristics",
    "MaxLength",
    "SecretLeak",
    "Verdict",
    "contains_secret",
]
