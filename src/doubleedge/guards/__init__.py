"""Hardening building blocks. Each guard has one method: ``scan(text) -> Verdict``."""

from doubleedge.guards.base import FunctionGuard, Guard, Verdict
from doubleedge.guards.classifier import InjectionClassifier
from doubleedge.guards.encoding import EncodedPayload
from doubleedge.guards.injection import DEFAULT_PATTERNS, DOCUMENT_PATTERNS, InjectionHeuristics
from doubleedge.guards.leak import SecretLeak, contains_secret
from doubleedge.guards.length import MaxLength
from doubleedge.guards.output import ActiveMarkup, ControlCharacters, LinkAllowlist

__all__ = [
    "ActiveMarkup",
    "ControlCharacters",
    "DEFAULT_PATTERNS",
    "DOCUMENT_PATTERNS",
    "InjectionClassifier",
    "LinkAllowlist",
    "EncodedPayload",
    "FunctionGuard",
    "Guard",
    "InjectionHeuristics",
    "MaxLength",
    "SecretLeak",
    "Verdict",
    "contains_secret",
]
