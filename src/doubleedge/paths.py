"""Where the course's folders are. The lab kit is installed from the repository
(editable), so the repository is found next to the package; each folder can be moved
with an environment variable (e.g. a private held-out set for a class)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def labs_dir() -> Path:
    return Path(os.environ.get("DOUBLEEDGE_LABS_DIR") or REPO_ROOT / "labs")


def graders_dir() -> Path:
    return Path(os.environ.get("DOUBLEEDGE_GRADERS_DIR") or REPO_ROOT / "graders")


CACHE_ENV = "DOUBLEEDGE_CACHE"


def cache_dir() -> Path:
    """Where the kit keeps what it computed once (figures, trained models): ``$DOUBLEEDGE_CACHE``,
    else the user's cache folder. Everything in it is keyed by its inputs, so it is safe to delete."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "doubleedge"


# A folder of models that a trusted process of the kit trained (the grader's, for its checker):
# read after this process's own trained models, never written.
KEPT_MODELS_ENV = "DOUBLEEDGE_KEPT_MODELS"


def trained_dir() -> Path:
    """Where this process keeps the models it trains (memorization/train.py), one file per key."""
    return cache_dir() / "trained"
