"""Smuggled encodings: decode what a model would decode, then check it like plain text."""

from __future__ import annotations

from doubleedge.encodings import decoded_payloads, rot13_payload, unicode_tags
from doubleedge.guards.base import Guard, Verdict


class EncodedPayload(Guard):
    """Blocks messages carrying a base64, hex, ROT13 or invisible Unicode-tag payload.

    With ``inner`` set, only payloads that ``inner`` would block are refused, so a
    customer can still paste an order reference that happens to look like hex.
    Without it, any readable payload is refused: stricter, more over-blocking.
    """

    name = "encoded_payload"

    def __init__(self, inner: Guard | None = None) -> None:
        self.inner = inner

    def scan(self, text: str) -> Verdict:
        payloads = decoded_payloads(text)
        payloads += [hidden for hidden in (rot13_payload(text), unicode_tags(text)) if hidden]
        for payload in payloads:
            if self.inner is None:
                return self.block(text, f"decodes to {payload[:40]!r}")
            inner = self.inner.scan(payload)
            if not inner.allowed:
                return self.block(text, f"decoded payload blocked ({inner.reason})")
        return self.allow(text)
