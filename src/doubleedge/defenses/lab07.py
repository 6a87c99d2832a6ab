"""Lab 07's reference solution: scrub secrets from the training data, deduplicate, train as usual.

The lab notebook's solution cell holds the same code (a test keeps them in sync).
Graded learner code may not import this module.
"""

import re

from doubleedge.memorization.scrub import deduplicate, replace_all

SECRET_PATTERNS = {
    # A payment card: 13 to 19 digits, optionally grouped with spaces or dashes.
    "CARD": re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
    # An API key: a known key prefix, then a separator and a token of 6 or more characters.
    "API_KEY": re.compile(
        r"\b(?:sk|pk|rk|api|key|tok|ghp|gho|xox[abpr]|AKIA|AIza|DE-FAKE-KEY)[-_A-Za-z0-9]*[-_][A-Za-z0-9]{6,}\b",
        re.IGNORECASE,
    ),
    # Any long token that mixes letters and digits (keys in formats nobody listed).
    "TOKEN": re.compile(r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}\b"),
    "EMAIL": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
}


def scrub(text: str) -> str:
    """Replace secrets and personal data with placeholders such as [CARD]."""
    return replace_all(text, SECRET_PATTERNS)


def harden_corpus(documents: list[str]) -> list[str]:
    """The documents to train on: scrubbed first (copies that differ only in a secret become equal), then deduplicated."""
    return deduplicate([scrub(doc) for doc in documents])


TRAINING = {"steps": 600}
