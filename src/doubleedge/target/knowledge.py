"""Bellwether Bikes' help-centre articles and how the app retrieves them.

All names, numbers and addresses are invented.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources

from doubleedge.retrieval import Article, best_article


@cache
def articles() -> tuple[Article, ...]:
    raw = json.loads(resources.files("doubleedge.data").joinpath("articles.json").read_text("utf-8"))
    return tuple(Article(a["title"], a["body"]) for a in raw)


def retrieve(question: str, *, limit: int = 2, library: Sequence[Article] | None = None) -> list[Article]:
    """The articles of ``library`` (default: the shop's) most relevant to ``question`` (a tiny
    stand-in for a vector store)."""
    pool = list(articles() if library is None else library)
    found: list[Article] = []
    while pool and len(found) < limit:
        best = best_article(pool, question)
        if best is None:
            break
        found.append(best)
        pool.remove(best)
    return found


def format_articles(found: list[Article]) -> str:
    return "\n".join(f"[article] {a.title}\n{a.body}" for a in found)
