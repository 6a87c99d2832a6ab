"""Keyword retrieval over short articles: the app's search and the reference model's reading.

A tiny stand-in for a vector store. It is deliberately simple and deterministic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an the is are was were be do does did i you my your me we our it its of to in on for "
    "and or with what how when where which who can could would should will please there this "
    "that have has get if at by from about any some".split()
)


@dataclass(frozen=True)
class Article:
    """A knowledge-base article."""

    title: str
    body: str


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in WORD.findall(text.lower()) if w not in STOPWORDS}


# Every reply of the reference model ranks the same articles against the question: their word
# sets are worked out once per text, not once per reply (most of a reply's time before).
@functools.lru_cache(maxsize=1024)
def _article_words(text: str) -> frozenset[str]:
    return frozenset(content_words(text))


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """A crude stemmer: enough to match "batteries" with "battery" and "shipping" with "ship"."""
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("es", ""), ("s", ""), ("ed", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + replacement
            if replacement == "" and len(word) > 3 and word[-1] == word[-2]:
                word = word[:-1]  # shipp -> ship
            return word
    return word


def relevance(article: Article, asked: set[str]) -> int:
    """Shared content words, with title words counting twice more."""
    return len(asked & _article_words(article.body)) + 2 * len(asked & _article_words(article.title))


def best_article(articles: Sequence[Article], question: str, *, minimum: int = 1) -> Article | None:
    """The most relevant article (ties go to the first), or None below ``minimum``."""
    asked = content_words(question)
    best, best_score = None, minimum - 1
    for article in articles:
        score = relevance(article, asked)
        if score > best_score:
            best, best_score = article, score
    return best
