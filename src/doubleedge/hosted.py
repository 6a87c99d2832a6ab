"""A "hosted" model provider on loopback, for Lab 11: what a provider's API receives, and keeps.

:class:`HostedProvider` serves the OpenAI chat API (``POST /v1/chat/completions``) on
127.0.0.1 at a free port, answers with a model running in this process (the reference model
by default), and **logs every request it receives**, headers and body, as a provider's API
does. Reading ``provider.log`` shows what a hosted service now holds from a conversation.

:class:`Outbound` is the app's side: a model backend that sends each request to such an
endpoint through the existing ``openai:`` backend, after an optional ``minimise(messages,
customer)`` function has removed what should not leave home.

Standard library only; binds loopback only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from doubleedge.models.base import ROLES, ChatModel, Message
from doubleedge.models.openai_compat import OpenAICompatModel
from doubleedge.target.server import LOOPBACK, STOP_POLL_SECONDS

MAX_BODY_BYTES = 512 * 1024
MODEL_NAME = "bell-hosted"
API_KEY = "sk-course-demo-not-a-real-key"  # what the app sends: a provider logs keys too
LOGGED_HEADERS = ("Authorization", "User-Agent", "Content-Type")

# minimise(messages, customer) -> messages: what the app lets leave home (Lab 11, Exercise 2).
Minimise = Callable[[list[dict], dict], list[dict]]


class BadRequest(ValueError):
    pass


def parse_messages(body: object) -> list[Message]:
    """The chat messages of an OpenAI-style request body, or BadRequest saying what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest('the body must be a JSON object with a non-empty "messages" list')
    messages = []
    for item in body["messages"]:
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            raise BadRequest(f'each message needs a "role" ({", ".join(ROLES)}) and a string "content"')
        messages.append(Message(item["role"], item["content"]))
    return messages


class HostedProvider:
    """An OpenAI-compatible endpoint on loopback that logs what it receives. A context manager:
    ``with HostedProvider() as provider: ... provider.url ... provider.log``."""

    def __init__(self, model: ChatModel | None = None) -> None:
        from doubleedge.models import ReferenceModel

        self.model = model or ReferenceModel()
        self.log: list[dict] = []  # one record per request received: time, path, headers, body
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(STOP_POLL_SECONDS,),
                                        name="hosted-provider", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The API base, as the ``openai:`` backend takes it."""
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> HostedProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def log_text(self) -> str:
        """Everything logged, one JSON record per line (what an operator, or a leak, would read)."""
        with self._lock:
            return "".join(json.dumps(record) + "\n" for record in self.log)

    def _record(self, path: str, headers: dict[str, str], body: object) -> None:
        with self._lock:
            self.log.append({"received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "path": path,
                             "headers": headers, "body": body})  # fmt: skip

    def _answer(self, body: dict) -> dict:
        reply = self.model.generate(parse_messages(body), max_new_tokens=int(body.get("max_tokens") or 256))
        with self._lock:
            number = len(self.log)
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", MODEL_NAME)),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # the provider's own log is provider.log

            def send_json(self, status: HTTPStatus, payload: dict) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": f"no route {self.path}"}})
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY_BYTES:
                    return self.send_json(HTTPStatus.BAD_REQUEST, {"error": {"message": "body missing or too large"}})
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return self.send_json(HTTPStatus.BAD_REQUEST, {"error": {"message": "the body is not JSON"}})
                # Logged before anything else: a provider keeps what it received, answered or not.
                provider._record(self.path, {h: self.headers[h] for h in LOGGED_HEADERS if h in self.headers}, body)
                try:
                    self.send_json(HTTPStatus.OK, provider._answer(body))
                except BadRequest as exc:
                    self.send_json(HTTPStatus.BAD_REQUEST, {"error": {"message": str(exc)}})

        return Handler


def messages_sent(log: Sequence[dict]) -> list[dict]:
    """Every chat message in a provider's log, in the order received (repeated turns included)."""
    found = []
    for record in log:
        body = record.get("body") if isinstance(record, dict) else None
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            found += [m for m in body["messages"] if isinstance(m, dict)]
    return found


class Outbound(ChatModel):
    """The app's hosted backend: each request goes to ``url`` (an OpenAI-compatible API), after
    ``minimise(messages, customer)`` decided what leaves. Without ``minimise``, everything does."""

    def __init__(self, url: str, *, minimise: Minimise | None = None, customer: dict | None = None) -> None:
        self.remote = OpenAICompatModel(url, MODEL_NAME, api_key=API_KEY, timeout=60)
        self.minimise, self.customer = minimise, dict(customer or {})
        self.name = f"hosted:{url}"

    def outgoing(self, messages: Sequence[Message]) -> list[Message]:
        """What is sent for ``messages``: the minimised list, checked to be chat messages."""
        data = [{"role": m.role, "content": m.content} for m in messages]
        if self.minimise is None:
            return list(messages)
        sent = self.minimise(data, dict(self.customer))
        try:
            return parse_messages({"messages": sent})
        except BadRequest:
            raise ValueError("minimise must return a non-empty list of {role, content} messages") from None

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        return self.remote.generate(self.outgoing(messages), max_new_tokens=max_new_tokens)
