"""Hardening building blocks. Each guard has one method: ``scan(text) -> Verdict``."""

from doubleedge.guards.base import FunctionGuard, Guard, RewriteGuard, Verdict
from doubleedge.guards.classifier import InjectionClassifier
from doubleedge.guards.documents import INSTRUCTION_PATTERNS, Datamark, StripInstructions
from doubleedge.guards.encoding import EncodedPayload
from doubleedge.guards.injection import DEFAULT_PATTERNS, DOCUMENT_PATTERNS, InjectionHeuristics
from doubleedge.guards.leak import SecretLeak, contains_secret
from doubleedge.guards.length import MaxLength
from doubleedge.guards.output import ActiveMarkup, ControlCharacters, LinkAllowlist
from doubleedge.guards.pii import PII_PATTERNS, RedactPII, redact

__all__ = [
    "ActiveMarkup",
    "ControlCharacters",
    "Datamark",
    "DEFAULT_PATTERNS",
    "DOCUMENT_PATTERNS",
    "InjectionClassifier",
    "LinkAllowlist",
    "EncodedPayload",
    "FunctionGuard",
    "Guard",
    "INSTRUCTION_PATTERNS",
    "InjectionHeuristics",
    "MaxLength",
    "PII_PATTERNS",
    "RedactPII",
    "RewriteGuard",
    "SecretLeak",
    "StripInstructions",
    "Verdict",
    "contains_secret",
    "redact",
]
