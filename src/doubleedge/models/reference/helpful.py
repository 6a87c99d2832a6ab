"""The model doing its job: answering from the articles, checking codes, being polite."""

from __future__ import annotations

import re

from doubleedge.models.reference.context import SECRET_TOKEN, Context
from doubleedge.retrieval import best_article

GREETING = re.compile(r"\s*(?:hi|hello|hey|good (?:morning|afternoon|evening))\b", re.I)
CODE_CHECK = re.compile(r"\bcode\b[^\n]{0,40}\b(?:valid|work|apply|accept)|\b(?:valid|work|apply|accept)", re.I)


def check_code(ctx: Context) -> str | None:
    """Tells a customer whether the code they typed is valid (why the app put it in the prompt)."""
    typed = SECRET_TOKEN.search(ctx.text)
    if typed is None or len(ctx.text) > 200 or not CODE_CHECK.search(ctx.text):
        return None
    if typed.group(0) in ctx.system.text:
        return f"Yes, {typed.group(0)} is a valid code. It will be applied at checkout."
    return f"Sorry, {typed.group(0)} is not a valid code."


def answer_from_articles(ctx: Context) -> str | None:
    """Answers from the knowledge-base article that best matches the question."""
    best = best_article(ctx.system.articles(), ctx.text)
    return None if best is None else best.body


def fallback(ctx: Context) -> str:
    if GREETING.match(ctx.text):
        return "Hello! How can I help you today?"
    topics = ", ".join(a.title.lower() for a in ctx.system.articles()[:5])
    suffix = f" I can help with {topics}." if topics else ""
    return f"I'm not sure I understood that. Could you rephrase your question?{suffix}"
