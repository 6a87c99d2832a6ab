"""PII redaction on output: mask contact details and card digits before a reply leaves.

The last line of defense for sensitive information disclosure (OWASP LLM02:2025): it
catches the plain forms of what leaked past the real control (authorization in code,
before the model sees a record). It misses encoded, spelled-out or paraphrased forms,
and it also masks what the customer was entitled to see. Tools such as Microsoft
Presidio do the same with trained recognizers instead of patterns.
"""

from __future__ import annotations

import re

from doubleedge.guards.base import Guard, Verdict

SHOP_DOMAIN = "bellwetherbikes.example"

PII_PATTERNS: dict[str, str] = {
    "email": r"\b[\w.+-]+@(?!" + re.escape(SHOP_DOMAIN) + r"\b)[\w-]+(?:\.[\w-]+)+\b",
    "card": r"\b(?:\d[ -]?){12,18}\d\b|(?<=ending )\d{4}\b|(?<=ending in )\d{4}\b",
    "phone": r"(?<![\w-])(?:\+?\d{1,2}[ .-]?)?(?:\(?\d{3}\)?[ .-]?)?\d{3}[ .-]\d{4}\b",
    "address": r"\b\d{1,5} [A-Z][a-z]+(?: [A-Z][a-z]+)? (?:Street|St|Road|Rd|Lane|Ln|Court|Ct|Avenue|Ave|View|Way|Drive|Dr)\b",
}


def redact(text: str, patterns: dict[str, str] = PII_PATTERNS) -> str:
    """``text`` with each match replaced by ``[redacted KIND]``."""
    for kind, pattern in patterns.items():
        text = re.sub(pattern, f"[redacted {kind}]", text)
    return text


class RedactPII(Guard):
    """Rewrites replies with emails, phone numbers, card digits and street addresses masked."""

    name = "redact_pii"

    def __init__(self, patterns: dict[str, str] = PII_PATTERNS) -> None:
        self.patterns = dict(patterns)

    def scan(self, text: str) -> Verdict:
        cleaned = redact(text, self.patterns)
        return Verdict(True, cleaned, 0.0 if cleaned == text else 0.5, "")
