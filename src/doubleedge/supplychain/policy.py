"""Building blocks for a loading policy, and how a loader's behaviour is recorded.

The lab's learners write ``safe_load(path, expected_sha256)`` from these pieces. The
grader records what a loader did with each case as JSON (``outcome_of``), so the
judgement can happen in another process than the loader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from doubleedge.supplychain.build import fingerprint, sha256_file

__all__ = ["UnsafeModelError", "fingerprint", "outcome_of", "sha256_file"]


class UnsafeModelError(Exception):
    """Raised by a loading policy that refuses a model file or folder."""


def outcome_of(loader: Callable[[str, str], object], path: str | Path, sha256: str) -> dict:
    """What ``loader(path, sha256)`` did, as JSON.

    ``{"loaded": fingerprint}`` if it returned a dict of tensors, ``{"refused": "ErrorType"}``
    if it raised, ``{"invalid": reason}`` if it returned something else.
    """
    try:
        state = loader(str(path), sha256)
    except Exception as exc:  # any refusal counts: a loader may raise its own errors
        return {"refused": type(exc).__name__}
    try:
        return {"loaded": fingerprint(state)}
    except TypeError as exc:
        return {"invalid": str(exc)}
