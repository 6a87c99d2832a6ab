"""Any OpenAI-compatible chat server: llama.cpp's ``llama-server``, vLLM, LM Studio, ``transformers serve``.

Spec: ``openai:URL#MODEL``, where URL is the API base (``http://127.0.0.1:8080/v1``) and
MODEL the name the server knows the model by. ``POST {URL}/chat/completions`` with
temperature 0. Set ``DOUBLEEDGE_OPENAI_API_KEY`` if the server wants a key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from doubleedge.models import _http
from doubleedge.models.base import ChatModel, Message, ModelError

API_KEY_ENV = "DOUBLEEDGE_OPENAI_API_KEY"
SPEC_HELP = "openai:URL#MODEL, e.g. openai:http://127.0.0.1:8080/v1#qwen2.5-0.5b-instruct"


class OpenAICompatModel(ChatModel):
    """A model behind an OpenAI-style ``/chat/completions`` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float | None = None) -> None:
        self.base_url = _http.check_http_url(base_url, "the openai: server URL")
        if not model.strip():
            raise ValueError(f"the openai: backend needs a model name: {SPEC_HELP}")
        self.model = model
        self.api_key = api_key
        self.timeout = _http.default_timeout() if timeout is None else timeout
        self.name = f"openai:{self.base_url}#{model}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        payload = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }  # no "stop" list: a stop string would cut code and encodings short
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        data = _http.post_json("openai", self.url, payload, timeout=self.timeout, headers=headers)
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ModelError(
                f"openai backend at {self.url} answered without choices[0].message: {data!r:.300}"
            ) from None
        if content is not None and not isinstance(content, str):
            raise ModelError(f"openai backend at {self.url} answered a non-text message content: {content!r:.300}")
        if not content or not content.strip():
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            raise ModelError(f"openai backend at {self.url} gave an empty reply (finish_reason: {reason})")
        return content.strip()


def from_spec(rest: str) -> OpenAICompatModel:
    """Build the backend from the part of ``openai:URL#MODEL`` after ``openai:``."""
    url, sep, model = rest.rpartition("#")
    if not sep or not url:
        raise ValueError(f"the openai: backend needs a URL and a model name: {SPEC_HELP}")
    return OpenAICompatModel(url, model, api_key=os.environ.get(API_KEY_ENV) or None)
