"""Output checks for a secret: a canary that must never leave the bot, in any form."""

from __future__ import annotations

import base64
import re

from doubleedge.guards.base import Guard, Verdict

_SEPARATORS = re.compile(r"[\s\-_.,/|*`'\"]+")


def squash(text: str) -> str:
    """Lower-case with separators removed, so ``D E - f a k e`` matches ``de-fake``."""
    return _SEPARATORS.sub("", text.lower())


def leak_forms(secret: str) -> list[str]:
    """The forms of ``secret`` that attackers ask for to slip past an exact-match filter.

    Each spelling (as given, without separators, lower case) plainly, reversed, in
    base64 (padding dropped: it decodes without) and in hex, all squashed for matching.
    """
    spellings = {secret, _SEPARATORS.sub("", secret), secret.lower(), _SEPARATORS.sub("", secret).lower()}
    forms = set()
    for spelling in spellings:
        forms |= {
            spelling,
            spelling[::-1],
            base64.b64encode(spelling.encode()).decode().rstrip("="),
            spelling.encode().hex(),
        }
    return sorted(squash(f) for f in forms)


def contains_secret(text: str, secret: str) -> bool:
    """True if ``text`` holds ``secret`` plainly, spaced, reversed, in base64 or hex."""
    squashed = squash(text)
    return any(form and form in squashed for form in leak_forms(secret))


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
