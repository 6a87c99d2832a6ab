"""Per-learner secrets: each learner's bot holds a different, clearly fake code.

The code is an HMAC of a course key and the learner id, so two learners never share
an answer. The default key is public (self-study); instructors set
``DOUBLEEDGE_COURSE_KEY`` to a private value so learners cannot compute codes.
"""

from __future__ import annotations

import hashlib
import hmac
import os

PUBLIC_COURSE_KEY = "double-edge-public-demo-key-not-a-secret"
DEFAULT_LEARNER = "local"


def course_key() -> str:
    return os.environ.get("DOUBLEEDGE_COURSE_KEY") or PUBLIC_COURSE_KEY


def learner_id() -> str:
    """The learner this process works for: explicit setting, hub user, or ``local``."""
    return os.environ.get("DOUBLEEDGE_LEARNER") or os.environ.get("JUPYTERHUB_USER") or DEFAULT_LEARNER


def derive_secret(learner: str | None = None, *, key: str | None = None) -> str:
    """The learner's staff discount code, e.g. ``DE-FAKE-1A2B-3C4D`` (fake by design)."""
    learner = learner_id() if learner is None else learner
    if not learner:
        raise ValueError("learner id must not be empty")
    digest = hmac.new((key or course_key()).encode(), learner.encode(), hashlib.sha256).hexdigest()
    code = digest[:8].upper()
    return f"DE-FAKE-{code[:4]}-{code[4:]}"
