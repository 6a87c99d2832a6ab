"""A model served by Ollama (``ollama serve``), through its own ``POST /api/chat``.

Spec: ``ollama:NAME`` (``ollama:qwen2.5:0.5b``). The host comes from ``$OLLAMA_HOST``
like Ollama's own client (``127.0.0.1:11434`` unless set). One non-streamed reply at
temperature 0, at most ``max_new_tokens`` tokens (Ollama's ``num_predict``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from doubleedge.models import _http
from doubleedge.models.base import ChatModel, Message, ModelError

HOST_ENV = "OLLAMA_HOST"
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434


def ollama_host(value: str | None = None) -> str:
    """The base URL for ``$OLLAMA_HOST`` (or ``value``): ``host``, ``host:port`` or a full URL."""
    value = (os.environ.get(HOST_ENV, "") if value is None else value).strip()
    if not value:
        return DEFAULT_HOST
    if "://" not in value:  # Ollama's own short forms: "host", "host:port", ":port"
        parts = urlsplit(f"http://{value}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"{HOST_ENV} has a bad port: {value!r}") from None
        value = f"http://{parts.hostname or '127.0.0.1'}:{port}"
        if parts.hostname and ":" in parts.hostname:  # an IPv6 address needs its brackets back
            value = f"http://[{parts.hostname}]:{port}"
    return _http.check_http_url(value, HOST_ENV)


class OllamaModel(ChatModel):
    """A model pulled into a local Ollama (``ollama pull NAME`` first)."""

    def __init__(self, model: str, *, host: str | None = None, timeout: float | None = None) -> None:
        if not model.strip():
            raise ValueError("the ollama: backend needs a model name, e.g. ollama:qwen2.5:0.5b")
        self.model = model
        self.host = ollama_host(host)
        self.timeout = _http.default_timeout() if timeout is None else timeout
        self.name = f"ollama:{model}"

    @property
    def url(self) -> str:
        return f"{self.host}/api/chat"

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        payload = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": False,
            "options": {"temperature": 0, "num_predict": max_new_tokens},
        }
        try:
            data = _http.post_json("ollama", self.url, payload, timeout=self.timeout)
        except ModelError as exc:
            if "HTTP 404" in str(exc):  # Ollama's answer for a model it does not have
                raise ModelError(f"{exc} (run: ollama pull {self.model})") from None
            raise
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise ModelError(f"ollama backend at {self.url} answered a non-text message content: {content!r:.300}")
        if not content or not content.strip():
            if "error" in data:
                raise ModelError(f"ollama backend at {self.url} answered an error: {data['error']}")
            raise ModelError(
                f"ollama backend at {self.url} gave an empty reply (done_reason: {data.get('done_reason')})"
            )
        return content.strip()


def from_spec(rest: str) -> OllamaModel:
    """Build the backend from the part of ``ollama:NAME`` after ``ollama:``."""
    return OllamaModel(rest)
