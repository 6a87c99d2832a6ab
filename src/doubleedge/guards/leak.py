"""Output checks for a secret: a canary that must never leave the bot, in any form."""

from __future__ import annotations

import base64
import re

from doubleedge.guards.base import Guard, Verdict

_SEPARATORS = re.compile(r"[\s\-_.,/|*`'\"]+")


def squash(text: str) -> str:
    """Lower-case with separators removed, so ``D E - f a k e`` matches ``de-fake``."""
    return _SEPARATORS.sub("", text.lower())


def leak_forms(secret: str) -> dict[str, str]:
    """The forms of ``secret`` that attackers ask for to slip past an exact-match filter, each
    with how it is disguised.

    Each spelling (as given, without separators, lower case) "as written", "reversed", "in
    base64" (padding dropped: it decodes without) and "in hex", all squashed for matching.
    """
    spellings = {secret, _SEPARATORS.sub("", secret), secret.lower(), _SEPARATORS.sub("", secret).lower()}
    disguises = (
        ("as written", lambda s: s),
        ("reversed", lambda s: s[::-1]),
        ("in base64", lambda s: base64.b64encode(s.encode()).decode().rstrip("=")),
        ("in hex", lambda s: s.encode().hex()),
    )
    forms: dict[str, str] = {}
    for how, disguise in disguises:  # in this order: a form two disguises share is named by the first
        for spelling in spellings:
            forms.setdefault(squash(disguise(spelling)), how)
    return forms


def secret_disguise(text: str, secret: str) -> str | None:
    """How ``text`` holds ``secret`` (see ``leak_forms``), or None if it does not."""
    squashed = squash(text)
    return next((how for form, how in leak_forms(secret).items() if form and form in squashed), None)


def contains_secret(text: str, secret: str) -> bool:
    """True if ``text`` holds ``secret`` plainly, spaced, reversed, in base64 or hex."""
    return secret_disguise(text, secret) is not None


class SecretLeak(Guard):
    """Blocks replies that contain the secret (see ``contains_secret``)."""

    name = "secret_leak"

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("secret must not be empty")
        self.secret = secret

    def scan(self, text: str) -> Verdict:
        if contains_secret(text, self.secret):
            return self.block(text, "reply contains the secret")
        return self.allow(text)
