"""The checker's files in the folder it shares with the runner (see authoritative.py).

Learner code runs in the runner while the checker works, and can write to the shared folder:
it could plant a link where the checker is about to write (or read), to send it elsewhere. So
the checker never uses a path there that anyone could know in advance: each of its folders is
new, with a random name (``mkdtemp`` creates it, and fails rather than follow anything in its
place), and before learner code is given a path in it, the folder is checked for links the
checker did not make itself (``lstat``: a link is never followed). A link found fails the test
that needed the folder, the learner's own, with :data:`LINK_NOTE`. Whatever a race still
diverts cannot leave the shared folder: the checker's sandbox may write nowhere else on the
host but its result folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

LINK_NOTE = (
    "a link appeared among the files the grader built for your code (something in your code made it); "
    "the grader does not follow links there, so this test fails"
)


class PlantedLink(RuntimeError):
    """A link in a folder the checker built, which the checker did not make."""


def fresh_folder(parent: str | Path, prefix: str) -> Path:
    """A new, empty folder with a random name under ``parent`` (created if missing, never through a link)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    if parent.is_symlink():
        raise PlantedLink(LINK_NOTE)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def refuse_links(folder: str | Path, made: Iterable[str | Path] = ()) -> None:
    """Raise :class:`PlantedLink` if anything under ``folder`` is a link other than those in ``made``."""
    allowed = {Path(p) for p in made}
    for root, dirs, files in os.walk(folder):  # followlinks=False: a link to a folder is listed, never entered
        for name in (*dirs, *files):
            path = Path(root) / name
            if path.is_symlink() and path not in allowed:
                raise PlantedLink(LINK_NOTE)
