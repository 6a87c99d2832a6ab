"""Per-learner secrets: every code, canary and grading secret is derived here, nowhere else.

Three levels of key, each an HMAC of the one above, so each process holds only what it needs:

* the **course key** (``DOUBLEEDGE_COURSE_KEY``): the instructor's, on the hub and the
  grading machine only. The default is public (self-study: nothing to hide).
* a **learner key** (``DOUBLEEDGE_LEARNER_KEY``): HMAC(course key, learner id), given to
  that learner's server. It derives that learner's codes and nobody else's.
* a learner's **values**: HMAC(learner key, purpose), e.g. the Lab 01 staff discount code.

The **grading secret** is derived from the course key directly, not from the learner key:
the grader replays a learner's attack against a bot holding it, so a learner whose process
never had the course key cannot compute what the attack must reveal.
"""

from __future__ import annotations

import hashlib
import hmac
import os

PUBLIC_COURSE_KEY = "double-edge-public-demo-key-not-a-secret"
DEFAULT_LEARNER = "local"
COURSE_KEY_ENV = "DOUBLEEDGE_COURSE_KEY"
LEARNER_KEY_ENV = "DOUBLEEDGE_LEARNER_KEY"
LEARNER_ENV = "DOUBLEEDGE_LEARNER"
STAFF_CODE = "staff-code"  # the purpose of the Lab 01 code (the default)


def _hmac(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def _code(digest: str) -> str:
    code = digest[:8].upper()
    return f"DE-FAKE-{code[:4]}-{code[4:]}"


def _check(learner: str) -> str:
    if not learner:
        raise ValueError("learner id must not be empty")
    return learner


def course_key() -> str:
    """The course key. A process that holds only a learner key (a learner's server) has none."""
    key = os.environ.get(COURSE_KEY_ENV)
    if key:
        return key
    if os.environ.get(LEARNER_KEY_ENV):
        raise PermissionError(
            f"this process holds only {learner_id()}'s learner key, not the course key: "
            "grading happens on the instructor's side"
        )
    return PUBLIC_COURSE_KEY


def learner_id() -> str:
    """The learner this process works for: explicit setting, hub user, or ``local``."""
    return os.environ.get(LEARNER_ENV) or os.environ.get("JUPYTERHUB_USER") or DEFAULT_LEARNER


def learner_key(learner: str, *, key: str | None = None) -> str:
    """What a learner's server gets (never the course key): derives that learner's values only."""
    return _hmac(key or course_key(), f"learner:{_check(learner)}")


def learner_environment(learner: str) -> dict[str, str]:
    """The secrets part of a learner's process environment: their id and their learner key."""
    return {LEARNER_ENV: learner, LEARNER_KEY_ENV: learner_key(learner)}


def _key_for(learner: str) -> str:
    """The learner key this process uses for ``learner``: derived when it has the course key,
    held when it is that learner's own process; any other learner is refused."""
    held = os.environ.get(LEARNER_KEY_ENV)
    if held and not os.environ.get(COURSE_KEY_ENV):
        if learner != learner_id():
            raise PermissionError(f"this process holds only {learner_id()}'s learner key, not {learner}'s")
        return held
    return learner_key(learner)


def derive_secret(learner: str | None = None, *, key: str | None = None, purpose: str = STAFF_CODE) -> str:
    """A learner's code for ``purpose``, e.g. ``DE-FAKE-1A2B-3C4D`` (fake by design).

    ``key`` is a course key; without it, this process's keys (see the module docstring)."""
    learner = _check(learner_id() if learner is None else learner)
    own = learner_key(learner, key=key) if key else _key_for(learner)
    return _code(_hmac(own, purpose))


def grading_secret(learner: str, *, key: str | None = None, case: str = "") -> str:
    """The code of the bot the grader replays a learner's attack against: needs the course key.
    ``case`` names one of several such codes (a lab that replays an attack on many bots)."""
    return _code(_hmac(key or course_key(), f"grading:{_check(learner)}" + (f":{case}" if case else "")))
