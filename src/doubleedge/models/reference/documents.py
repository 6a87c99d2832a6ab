"""Indirect injection through the app's document channel, and answering from documents.

The app (``target/bot.py``) puts documents after the customer's message, each in an
envelope: ``[document N: source]`` ... ``[end of document N]``. How the model reads
them depends on what its system prompt tells it, as with real models:

* told nothing, it reads one stream of text: instructions inside a document count as
  much as the customer's (Greshake et al. 2023);
* told that documents are data (*delimiting*), it ignores casual instructions inside
  the envelope, but text after a forged end marker is outside it, and lines that look
  like system or urgent messages still win;
* told that documents are *datamarked* with a symbol woven between their words, it
  reads marked text as data only (Hines et al. 2024, "Defending Against Indirect Prompt
  Injection Attacks With Spotlighting", arXiv:2403.14720, report this as the stronger
  variant). A real model also loses a little quality on marked text; this one does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from doubleedge.models.reference.context import Context, SystemPrompt
from doubleedge.models.reference.hijacking import EMBEDDED_ORDERS, OVERRIDE, QUOTED_ORDER, ordered_payload
from doubleedge.retrieval import content_words

ENVELOPE_START = re.compile(r"^\[document 1(?::[^\]\n]*)?\]$", re.M)
ENVELOPE = re.compile(r"^\[document (\d+)(?::[^\]\n]*)?\]\n(.*?)\n\[end of document \1\]$", re.M | re.S)
# Lines that sound like the system or an emergency: even delimited, they get obeyed.
AUTHORITY = re.compile(
    r"^\s*(?:\[?(?:system|assistant|admin|developer|important|urgent)\]?\s*(?:message|note|update)?\s*:|<\|im_start\|>)",
    re.I,
)
SUMMARY_ASK = re.compile(
    r"\bsummar|\bsum up\b|\btl;?dr\b|\bgist\b|\boverview\b|\bwhat (?:do|does|did)\b[^?]{0,40}\bsay\b", re.I
)
INSTRUCTION_SHAPED = re.compile(
    r"\b(?:ai|assistant|chatbot|bot|model|language model)\b[^.\n]{0,20}\b(?:must|should|reading this|will)\b"
    r"|\b(?:reply|respond|answer|say|print|output|tell)\b[^.\n]{0,30}[\"'\u201c]"
    r"|<<|\]\(|https?://|\binstructions?\b|\bprompt\b",
    re.I,
)
QUESTION_NOISE = frozenset(
    content_words(
        "summarize summary attached document documents email review reviews page say says tell me "
        "please according customer riders other"
    )  # fmt: skip
)


@dataclass(frozen=True)
class Reading:
    """How the model reads one user turn: instructions, the documents, the customer's question."""

    instructions: str
    documents: tuple[str, ...]
    question: str


def read(system: SystemPrompt, user: str) -> Reading:
    start = ENVELOPE_START.search(user)
    if start is None:
        return Reading(user, (), user)
    question = user[: start.start()].strip()
    mark = system.datamark
    documents, escaped, lifted = [], [], []
    position = start.start()
    for envelope in ENVELOPE.finditer(user, start.start()):
        escaped.append(user[position : envelope.start()])
        position = envelope.end()
        body = envelope.group(2)
        marked = bool(mark) and body.count(mark) >= max(1, len(body.split()) - 1)
        text = body.replace(mark, " ") if marked else body
        documents.append(text)
        if not marked:
            lifted += [line for line in body.splitlines() if AUTHORITY.search(line) or OVERRIDE.search(line)]
    escaped.append(user[position:])
    if not system.documents_are_data and not mark:
        return Reading(user, tuple(documents), question)
    outside = "\n".join(part.strip() for part in escaped if part.strip() and not part.strip().startswith("[end of"))
    instructions = "\n".join(part for part in (question, outside, *lifted) if part)
    return Reading(instructions, tuple(documents), question)


def obey_documents(ctx: Context) -> str | None:
    """Carries out an order that reached it with the documents: all of their text when
    nothing says documents are data, otherwise what escaped the envelope or sounded
    like the system.

    Indirect prompt injection (Greshake et al. 2023, "Not what you've signed up for",
    arXiv:2302.12173): a review, an email or a web page speaks to the model, and the
    model answers the person who asked with the attacker's words.
    """
    if not ctx.documents or ctx.depth:
        return None
    extra = ctx.text[len(ctx.question) :] if ctx.text.startswith(ctx.question) else ctx.text
    return ordered_payload(extra) if extra.strip() else None


def sentences(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", line) if len(s.strip()) > 3]
    return found


# A summary leaves out links, so a summary cannot deliver one.
LINK_SHAPED = re.compile(r"\b[\w-]+(?:\.[\w-]+)*\.(?:example|com|net|org|io|co)\b", re.I)


def plain(sentence: str) -> bool:
    """A sentence that reports something, not one that orders the reader about or links away."""
    return not (
        INSTRUCTION_SHAPED.search(sentence)
        or LINK_SHAPED.search(sentence)
        or OVERRIDE.search(sentence)
        or QUOTED_ORDER.search(sentence)
        or AUTHORITY.search(sentence)
        or any(p.search(sentence) for p in EMBEDDED_ORDERS)
    )


def answer_from_documents(ctx: Context) -> str | None:
    """Answers the customer's question from the attached documents: the sentence that
    matches it best, or a summary (the first plain sentence of each document).

    What a model does when it treats documents as material to read, which is the job:
    the benign half of Lab 02's proof.
    """
    if not ctx.documents:
        return None
    readable = [[s for s in sentences(doc) if plain(s)] for doc in ctx.documents]
    asked = content_words(ctx.question or ctx.text) - QUESTION_NOISE
    if asked and not SUMMARY_ASK.search(ctx.question):
        scored = [(len(asked & content_words(s)), s) for doc in readable for s in doc]
        best = max(scored, key=lambda pair: pair[0], default=(0, ""))
        if best[0] > 0:
            return f"According to the document: {best[1]}"
    firsts = [doc[0] for doc in readable if doc]
    if not firsts:
        return "The document does not say anything I can use to answer that."
    return "Here is a summary: " + " ".join(firsts[:4])
