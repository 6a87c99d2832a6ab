"""Conversations kept by the HTTP server: a session id, a bounded history, an idle timeout.

The history stays on the server and only the server writes it: a client that could send
its own history could also make up the assistant's earlier answers (many-shot jailbreaks
work best that way). Each session belongs to one server, hence one learner's bot, and to
the customer who first spoke in it; ids are 128 random bits, so nobody reaches another
session by guessing.

Bounded three ways, so no client can fill the memory: at most ``max_turns`` exchanges per
session (the oldest are forgotten first, like a model's context window), at most
``max_chars`` characters of history, at most ``max_sessions`` sessions (the least recently
used one ends first). A session idle for ``ttl`` seconds expires.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from doubleedge.models.base import Message

MAX_TURNS = 20  # exchanges kept: enough for a Crescendo run (the paper's take at most 10 turns)
MAX_CHARS = 64_000  # characters of history kept: two full-size messages
MAX_SESSIONS = 512
TTL_SECONDS = 30 * 60
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
_ENDED_REMEMBERED = 4096  # ids remembered as ended, to tell "expired" from "unknown"


class SessionError(Exception):
    """A session that cannot be used; ``kind`` is ``"unknown"``, ``"expired"`` or ``"other customer"``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Session:
    id: str
    last_used: float
    customer: str | None = None
    bound: bool = False  # True once a turn fixed the customer
    history: list[Message] = field(default_factory=list)
    turns: int = 0  # exchanges so far, including forgotten ones
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class SessionStore:
    """Thread-safe sessions of one server. ``clock`` is injectable so tests need not sleep."""

    def __init__(
        self,
        *,
        max_turns: int = MAX_TURNS,
        max_chars: int = MAX_CHARS,
        max_sessions: int = MAX_SESSIONS,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(max_turns, max_chars, max_sessions) < 1 or ttl <= 0:
            raise ValueError("session limits must be positive")
        self.max_turns, self.max_chars, self.max_sessions, self.ttl = max_turns, max_chars, max_sessions, ttl
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._ended: OrderedDict[str, str] = OrderedDict()  # id -> why it ended
        self._lock = threading.Lock()

    def create(self) -> Session:
        with self._lock:
            self._sweep()
            while len(self._sessions) >= self.max_sessions:
                oldest, _ = self._sessions.popitem(last=False)
                self._remember_ended(oldest, f"it was the least recently used of {self.max_sessions} sessions")
            session = Session(secrets.token_urlsafe(16), self.clock())
            self._sessions[session.id] = session
            return session

    def get(self, session_id: str) -> Session:
        """The live session ``session_id`` (its idle timer restarts), or a SessionError."""
        with self._lock:
            self._sweep()
            session = self._sessions.get(session_id)
            if session is None:
                why = self._ended.get(session_id)
                if why is not None:
                    raise SessionError("expired", f"session {session_id!r} has ended ({why}); create a new one")
                raise SessionError("unknown", f"no session {session_id!r}; create one with POST /sessions")
            session.last_used = self.clock()
            self._sessions.move_to_end(session_id)
            return session

    def end(self, session_id: str) -> None:
        """Forget a session now (a reset); a SessionError if there is no such live session."""
        self.get(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)
            self._remember_ended(session_id, "it was deleted")

    def record(self, session: Session, message: str, reply: str) -> None:
        """Add one exchange, forgetting the oldest ones beyond the limits. Hold ``session.lock``."""
        session.history += [Message("user", message), Message("assistant", reply)]
        session.turns += 1
        while len(session.history) > 2 * self.max_turns or (
            len(session.history) > 2 and sum(len(m.content) for m in session.history) > self.max_chars
        ):
            del session.history[:2]
        if sum(len(m.content) for m in session.history) > self.max_chars:  # one exchange alone is too long
            session.history.clear()

    def __len__(self) -> int:
        with self._lock:
            self._sweep()
            return len(self._sessions)

    def _sweep(self) -> None:
        now = self.clock()
        while self._sessions:
            session_id, session = next(iter(self._sessions.items()))
            if now - session.last_used < self.ttl:
                break
            del self._sessions[session_id]
            self._remember_ended(session_id, f"it was idle for more than {self.ttl:g} s")

    def _remember_ended(self, session_id: str, why: str) -> None:
        self._ended[session_id] = why
        while len(self._ended) > _ENDED_REMEMBERED:
            self._ended.popitem(last=False)
