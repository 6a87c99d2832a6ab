"""The bot over HTTP: ``POST /chat`` with ``{"message": "..."}`` answers ``{"reply": "..."}``.

Two optional fields reach the app's other inputs: ``"documents"``, a list of strings the
bot reads as untrusted documents (Lab 02's scan puts garak's prompt there and asks a
fixed question), and ``"customer"``, the signed-in customer's id (Lab 03).

Conversations: ``POST /sessions`` answers ``{"session": ID, ...}`` (201); a ``/chat`` request
with ``"session": ID`` is one more turn of that conversation, and the model sees the turns
before it. ``GET /sessions/ID`` shows the history, ``DELETE /sessions/ID`` ends it. An
unknown session is a 404, one that has ended (idle too long, deleted, crowded out) a 410,
one continued for another customer a 409. Without ``"session"``, ``/chat`` is stateless, as
before. See ``sessions`` for the limits.

Standard library only. Every bad request gets a 4xx JSON error; nothing a client
sends can stop the server. It binds to loopback unless told otherwise.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from doubleedge.models.base import Message, ModelError
from doubleedge.target.persona import ChatBot
from doubleedge.target.records import customer_ids
from doubleedge.target.sessions import SESSION_ID, Session, SessionError, SessionStore

MAX_BODY_BYTES = 256 * 1024
MAX_MESSAGE_CHARS = 32_000  # about an 8k-token context: long documents fit, floods do not
MAX_DOCUMENTS = 8
LOOPBACK = "127.0.0.1"
# How often a background server's loop looks for shutdown(): stop() waits up to this long.
# socketserver's default, 0.5 s, was idle time at the end of every scan.
STOP_POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatRequest:
    message: str
    documents: tuple[str, ...] = ()
    customer: str | None = None
    session: str | None = None


def parse_chat_request(body: bytes) -> str:
    """The message in a ``/chat`` request body, or a RequestError saying what is wrong."""
    return parse_chat_fields(body).message


def parse_chat_fields(body: bytes) -> ChatRequest:
    """Every field of a ``/chat`` request body, or a RequestError saying what is wrong."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'body must be a JSON object like {"message": "..."}')
    if "message" not in payload:
        raise RequestError(HTTPStatus.BAD_REQUEST, 'missing field "message"')
    message = payload["message"]
    if not isinstance(message, str):
        raise RequestError(HTTPStatus.BAD_REQUEST, '"message" must be a string')
    if len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f'"message" is longer than {MAX_MESSAGE_CHARS} characters'
        )
    documents = payload.get("documents", [])
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise RequestError(HTTPStatus.BAD_REQUEST, '"documents" must be a list of strings')
    if len(documents) > MAX_DOCUMENTS:
        raise RequestError(HTTPStatus.BAD_REQUEST, f'at most {MAX_DOCUMENTS} "documents"')
    if sum(len(d) for d in documents) + len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"message and documents exceed {MAX_MESSAGE_CHARS} characters"
        )
    customer = payload.get("customer")
    if customer is not None and (not isinstance(customer, str) or customer not in customer_ids()):
        raise RequestError(HTTPStatus.BAD_REQUEST, f'"customer" must be one of {", ".join(customer_ids())}')
    session = payload.get("session")
    if session is not None and (not isinstance(session, str) or not SESSION_ID.match(session)):
        raise RequestError(HTTPStatus.BAD_REQUEST, '"session" must be a session id from POST /sessions')
    return ChatRequest(message, tuple(documents), customer, session)


def parse_new_session(body: bytes) -> None:
    """A ``POST /sessions`` body is empty or an empty JSON object: a session starts blank."""
    if not body.strip():
        return
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
    if payload != {}:
        raise RequestError(HTTPStatus.BAD_REQUEST, "POST /sessions takes no fields: send {} or nothing")


SESSION_ERRORS = {"unknown": HTTPStatus.NOT_FOUND, "expired": HTTPStatus.GONE, "other customer": HTTPStatus.CONFLICT}


def keeps_conversations(bot: ChatBot) -> bool:
    """True when the bot's ``reply`` takes a ``history`` (the support bots do; the agents do not)."""
    return "history" in inspect.signature(bot.reply).parameters


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that promises a body and never sends it must not hold a thread forever
    # Headers and body leave in separate writes: without TCP_NODELAY a client that keeps the
    # connection alive (garak's, see scan/launch.py) waits out a delayed ACK, 40 ms a reply.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # http.server's naming
        try:
            if self.path == "/sessions":
                self._new_session()
                return
            if self.path != "/chat":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path!r}; use POST /chat")
            request = parse_chat_fields(self._read_body())
            if request.session is None:
                reply = self.server.bot.reply(request.message, documents=request.documents, customer=request.customer)
                self._send(HTTPStatus.OK, {"reply": reply})
            else:
                self._send(HTTPStatus.OK, self._continue(request))
        except RequestError as exc:
            self.close_connection = True  # the body may be unread: this connection cannot be reused
            self._discard_pending_input()
            self._send(exc.status, {"error": str(exc)})
        except SessionError as exc:
            self._send(SESSION_ERRORS[exc.kind], {"error": str(exc)})
        except ModelError as exc:
            self._send(HTTPStatus.BAD_GATEWAY, {"error": f"model backend failed: {exc}"})
        except ConnectionError:  # the client went away before its reply (a stopped scan): no one to answer
            self.close_connection = True
        except Exception:  # a bug must not take the server down mid-scan
            log.exception("unexpected error while answering")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; see the server log"})

    def _new_session(self) -> None:
        if self.server.sessions is None:
            raise RequestError(HTTPStatus.NOT_IMPLEMENTED, "this target keeps no conversations; use POST /chat alone")
        parse_new_session(self._read_body())
        store = self.server.sessions
        session = store.create()
        limits = {"max_turns": store.max_turns, "max_history_chars": store.max_chars, "idle_timeout_s": store.ttl}
        self._send(HTTPStatus.CREATED, {"session": session.id, **limits})

    def _continue(self, request: ChatRequest) -> dict:
        """One more turn of a conversation: the bot sees the history, then the history grows."""
        store = self.server.sessions
        if store is None:
            raise RequestError(HTTPStatus.NOT_IMPLEMENTED, 'this target keeps no conversations; leave out "session"')
        session = store.get(request.session)
        with session.lock:  # one turn at a time per conversation; other sessions go on in parallel
            if session.bound and session.customer != request.customer:
                raise SessionError("other customer", "this session belongs to another customer; create a new one")
            session.customer, session.bound = request.customer, True
            history: list[Message] = list(session.history)
            reply = self.server.bot.reply(
                request.message, documents=request.documents, customer=request.customer, history=history
            )
            store.record(session, request.message, reply)
            return {"reply": reply, "session": session.id, "turn": session.turns}

    def _session_path(self) -> str | None:
        """The id in ``/sessions/ID``, or None for any other path."""
        prefix = "/sessions/"
        return self.path[len(prefix) :] if self.path.startswith(prefix) else None

    def _session_or_error(self, session_id: str) -> Session:
        if self.server.sessions is None:
            raise RequestError(HTTPStatus.NOT_IMPLEMENTED, "this target keeps no conversations")
        if not SESSION_ID.match(session_id):
            raise RequestError(HTTPStatus.NOT_FOUND, f"no session {session_id[:40]!r}")
        return self.server.sessions.get(session_id)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(HTTPStatus.OK, {"status": "ok", "defense": self.server.bot.defense.name})
        elif (session_id := self._session_path()) is not None:
            self._on_session(session_id, self._show_session)
        else:
            self._send(
                HTTPStatus.METHOD_NOT_ALLOWED if self.path == "/chat" else HTTPStatus.NOT_FOUND,
                {"error": "use POST /chat with a JSON body"},
            )

    def do_DELETE(self) -> None:
        session_id = self._session_path()
        if session_id is None:
            self._not_allowed()
        else:
            self._on_session(session_id, self._end_session)

    def _on_session(self, session_id: str, action: Callable[[Session], None]) -> None:
        try:
            action(self._session_or_error(session_id))
        except RequestError as exc:
            self._send(exc.status, {"error": str(exc)})
        except SessionError as exc:
            self._send(SESSION_ERRORS[exc.kind], {"error": str(exc)})

    def _show_session(self, session: Session) -> None:
        with session.lock:
            history = [{"role": m.role, "content": m.content} for m in session.history]
            turns = session.turns
        self._send(HTTPStatus.OK, {"session": session.id, "turns": turns, "history": history})

    def _end_session(self, session: Session) -> None:
        self.server.sessions.end(session.id)
        self._send(HTTPStatus.OK, {"session": session.id, "ended": True})

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST /chat with a JSON body"})

    do_PUT = do_PATCH = do_OPTIONS = _not_allowed

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if int(length) > MAX_BODY_BYTES:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body is larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(length))

    def _discard_pending_input(self, limit: int = MAX_BODY_BYTES) -> None:
        """Read what the client already sent: closing on unread data resets the connection
        before the client can read our error."""
        self.connection.settimeout(0.05)
        try:
            while limit > 0 and (chunk := self.rfile.read1(min(limit, 65536))):
                limit -= len(chunk)
        except OSError:
            pass

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        # ASCII escapes: a lone surrogate echoed from the request still makes valid JSON
        body = json.dumps(payload).encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")  # tell the client to reconnect
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: scans send thousands
        log.debug("%s " + format, self.address_string(), *args)


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a scan or a class opens many connections at once

    def __init__(
        self, bot: ChatBot, host: str = LOOPBACK, port: int = 8765, *, sessions: SessionStore | None = None
    ) -> None:
        self.bot = bot
        # Every server has its own store: conversations never cross servers, hence learners.
        self.sessions = (SessionStore() if sessions is None else sessions) if keeps_conversations(bot) else None
        super().__init__((host, port), ChatHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


@dataclass
class RunningServer:
    server: ChatServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def chat_url(self) -> str:
        return self.url + "/chat"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_in_thread(
    bot: ChatBot, host: str = LOOPBACK, port: int = 0, *, sessions: SessionStore | None = None
) -> RunningServer:
    """Serve ``bot`` from a background thread (port 0 picks a free port)."""
    server = ChatServer(bot, host, port, sessions=sessions)
    thread = threading.Thread(target=server.serve_forever, args=(STOP_POLL_SECONDS,), name="doubleedge-chat", daemon=True)
    thread.start()
    return RunningServer(server, thread)


@contextmanager
def serving(
    bot: ChatBot, host: str = LOOPBACK, port: int = 0, *, sessions: SessionStore | None = None
) -> Iterator[RunningServer]:
    running = start_in_thread(bot, host, port, sessions=sessions)
    try:
        yield running
    finally:
        running.stop()
