"""Smuggled instructions: the model decodes what it is given and acts on it."""

from __future__ import annotations

import codecs
import re

from doubleedge.encodings import first_payload
from doubleedge.models.reference.context import SECRET_REQUEST, Context
from doubleedge.models.reference.disclosure import CUSTOMER_ID, EVERYONE
from doubleedge.models.reference.hijacking import OVERRIDE, ordered_payload
from doubleedge.models.reference.jailbreaks import ROLE_PLAY_CUES

ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\[0-7]{3}|\\u[0-9a-fA-F]{4}|\\e)")


def decode_smuggled(ctx: Context) -> str | None:
    """Decodes base64, hex, ROT13 and invisible Unicode tag characters, then acts on them.

    Models "mismatched generalization" (Wei, Haghtalab & Steinhardt 2023, "Jailbroken:
    How Does LLM Safety Training Fail?", arXiv:2307.02483): capable models learned to
    decode in pre-training, but their safety training never saw encoded requests.
    garak's ``encoding`` probes measure it, and ``goodside.Tag`` the invisible variant
    (Goodside, January 2024).
    """
    if ctx.depth > 1:
        return None
    decoded = first_payload(ctx.text)
    if decoded is None:
        return None
    if OVERRIDE.search(decoded) or SECRET_REQUEST.search(decoded) or ROLE_PLAY_CUES.search(decoded):
        return ctx.follow(decoded)
    if ctx.system.signed_in and (EVERYONE.search(decoded) or CUSTOMER_ID.search(decoded) or _names(ctx, decoded)):
        return ctx.follow(decoded)  # a request about customer records, smuggled past the filters
    followed = ctx.follow(decoded)
    if followed.startswith("CALL "):  # an agent acts on a decoded request like on any other
        return followed
    return ordered_payload(decoded) or f"Decoded: {decoded}"


def _names(ctx: Context, text: str) -> bool:
    return any(r["name"].lower() in text.lower() for r in ctx.system.records())


def unescape_on_request(ctx: Context) -> str | None:
    """Turns escaped bytes (``\\x1b[32m``) into raw ones when asked to decode or print them.

    A model that "helpfully" emits raw terminal control characters lets text take over
    the terminal that displays it (Leon Derczynski, "LLM output can take over your
    computer", 2024; garak's ``ansiescape.AnsiRaw``).
    """
    if not ESCAPED_BYTES.search(ctx.text) or not re.search(
        r"\b(?:decode|unescape|print|output|repeat|raw)\b", ctx.text, re.I
    ):
        return None
    escaped = ctx.text[ESCAPED_BYTES.search(ctx.text).start() :].strip().strip("'\"`")
    try:
        return codecs.decode(escaped.replace("\\e", "\\x1b"), "unicode_escape")
    except UnicodeDecodeError:
        return None
