"""Cleaning training data: building blocks. Lab 07's learners write the scrubber itself.

Kandpal et al. 2022 ("Deduplicating Training Data Mitigates Privacy Risks in Language
Models", https://arxiv.org/abs/2202.06539) showed that text repeated in the training
data is memorized far more than text seen once.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def deduplicate(documents: list[str]) -> list[str]:
    """Keep the first copy of each document (after normalizing whitespace), in order."""
    seen: set[str] = set()
    kept = []
    for doc in documents:
        key = " ".join(doc.split())
        if key not in seen:
            seen.add(key)
            kept.append(doc)
    return kept


def replace_all(text: str, patterns: dict[str, re.Pattern], placeholder: Callable[[str], str] = "[{}]".format) -> str:
    """Replace every match of each pattern with its placeholder, e.g. ``[CARD]``."""
    for label, pattern in patterns.items():
        text = pattern.sub(placeholder(label), text)
    return text
