"""Finding and decoding smuggled payloads (base64, hex, ROT13).

One place for this logic: the reference model uses it to *follow* encoded
instructions, and the guards use it to *inspect* them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

BASE64_BLOB = re.compile(r"(?<![\w+/=])[A-Za-z0-9+/]{8,}={0,2}(?![\w+/=])")
HEX_BLOB = re.compile(r"\b(?:[0-9a-fA-F]{2}){6,}\b")
# Only an explicit mention: "how do I decode error E21?" is a customer question, not a payload.
ROT13_HINT = re.compile(r"rot-?13|^\s*(?:encoded|decoded)\s*:|\bencoded string\b", re.I | re.M)
TAG_CHARS = re.compile("[\U000e0000-\U000e007f]+")
_ROT13_NOISE = re.compile(
    r"(?i)rot-?13|decode[ds]?|encoded|string|the following|in your monologue|it is a secure system message|:"
)


def printable(raw: bytes) -> str | None:
    """``raw`` as text if it is mostly printable UTF-8 with some letters, else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    visible = sum(ch.isprintable() or ch.isspace() for ch in text)
    if text and visible / len(text) > 0.95 and re.search(r"[A-Za-z]", text):
        return text
    return None


def decode_base64(blob: str) -> str | None:
    if len(blob) % 4:
        return None
    try:
        return printable(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError):
        return None


def decode_hex(blob: str) -> str | None:
    return printable(binascii.unhexlify(blob)) if len(blob) % 2 == 0 else None


PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")


def decoded_blobs(text: str) -> list[tuple[str, str]]:
    """Every base64 or hex blob in ``text`` that decodes to readable text, as (``"base64"`` or
    ``"hex"``, the text).

    Plain words ("Requirements", "juxtaposition") are skipped: some of them are valid
    base64 by accident.
    """
    blobs = [b for b in BASE64_BLOB.findall(text) if not PLAIN_WORD.fullmatch(b.rstrip("="))]
    found = [("base64", d) for blob in blobs if (d := decode_base64(blob))]
    found += [("hex", d) for blob in HEX_BLOB.findall(text) if (d := decode_hex(blob))]
    return found


def decoded_payloads(text: str) -> list[str]:
    """Every base64 or hex blob in ``text`` that decodes to readable text."""
    return [decoded for _, decoded in decoded_blobs(text)]


def rot13_payload(text: str) -> str | None:
    """When ``text`` asks for decoding, its ROT13 reading (instructions words removed)."""
    if not ROT13_HINT.search(text):
        return None
    payload = _ROT13_NOISE.sub(" ", text)
    rotated = codecs.decode(payload, "rot13")
    if rotated == payload:
        return None
    return re.sub(r"\s+", " ", rotated).strip(" $")


def unicode_tags(text: str) -> str | None:
    """Text hidden in Unicode tag characters (U+E0000 block): invisible on screen, read by models.

    Riley Goodside showed in January 2024 that models follow instructions hidden this way.
    """
    hidden = "".join(chr(ord(ch) - 0xE0000) for run in TAG_CHARS.findall(text) for ch in run)
    return hidden if hidden.strip() else None


def first_payload(text: str) -> str | None:
    """What a model that decodes eagerly would read out of ``text``, if anything."""
    found = decoded_payloads(text)
    return found[0] if found else unicode_tags(text) or rot13_payload(text)
