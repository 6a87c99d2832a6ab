"""Output checks for what a reply could do downstream: exfiltration links, markup, control codes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlparse

from doubleedge.guards.base import Guard, Verdict

MARKDOWN_TARGET = re.compile(r"\]\(\s*([^)\s]+)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
BARE_URL = re.compile(r"\b(?:https?://|javascript:|data:)[^\s)\"'<>]+", re.I)
ACTIVE_MARKUP = re.compile(r"<\s*(?:script|img|iframe|svg|object|embed)\b|\bon[a-z]+\s*=|javascript:", re.I)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x9b\x9d]|\\(?:x1b|033|u001b|e)[\[\]]", re.I)


class LinkAllowlist(Guard):
    """Blocks replies with links or images to hosts outside an allow-list.

    A markdown image to an attacker's host is an exfiltration channel: the chat page
    fetches it and sends whatever is in its URL (Rehberger 2023). Support replies
    rarely need links, so the allow-list can be tiny.
    """

    name = "link_allowlist"

    def __init__(self, allowed_hosts: Iterable[str] = ("bellwetherbikes.example",)) -> None:
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    def _allowed(self, url: str) -> bool:
        try:
            parsed = urlparse(url)
            host = parsed.hostname
        except ValueError:  # e.g. "https://[x/": a URL the parser rejects is not one we vouch for
            return False
        return parsed.scheme in ("http", "https") and (host or "").lower() in self.allowed_hosts

    def scan(self, text: str) -> Verdict:
        urls = [a or b for a, b in MARKDOWN_TARGET.findall(text)] + BARE_URL.findall(text)
        # A link split over pieces ("wuzzi.net/logo.png?q=...") is still a destination.
        urls += [f"https://{m}" for m in re.findall(r"\b[\w-]+(?:\.[\w-]+)+/[^\s)]*\?[^\s)]*=", text)]
        bad = [u for u in urls if not self._allowed(u)]
        return self.block(text, f"link to {bad[0][:60]!r}") if bad else self.allow(text)


class ActiveMarkup(Guard):
    """Blocks replies with HTML that would run in a browser (script, event handlers, javascript:)."""

    name = "active_markup"

    def scan(self, text: str) -> Verdict:
        found = ACTIVE_MARKUP.search(text)
        return self.block(text, f"active markup {found.group(0)!r}") if found else self.allow(text)


class ControlCharacters(Guard):
    """Removes terminal control characters and escaped escape sequences from replies."""

    name = "control_characters"

    def scan(self, text: str) -> Verdict:
        cleaned = CONTROL.sub("", text)
        return Verdict(True, cleaned, 0.5 if cleaned != text else 0.0, "")
