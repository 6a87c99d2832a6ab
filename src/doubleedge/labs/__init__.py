"""The labs, one package each, found by discovery: the one registry that the CLI, the
grader, the figures, the site build, ``progress`` and the tests read.

Discovery imports every package ``labNN_slug`` in this folder, and in the folders listed in
``$DOUBLEEDGE_LAB_PATH`` (``os.pathsep``-separated; how a lab kept outside the repository,
such as the test suite's toy lab, joins the course), and reads its ``LAB``. Adding a lab is
described in course/instructors/adding-a-lab.md.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys

from doubleedge.labs.base import ChatTarget, Lab, NoChatTarget

__all__ = ["LABS", "ChatTarget", "Lab", "NoChatTarget", "discover", "get_lab"]

PACKAGE = re.compile(r"lab(\d\d)_[a-z0-9_]+")
ENV_PATH = "DOUBLEEDGE_LAB_PATH"


def _extra_folders() -> list[str]:
    return [p for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]


def discover() -> dict[str, Lab]:
    """Every lab package's ``LAB``, by number, in number order."""
    found: dict[str, Lab] = {}
    for folder in _extra_folders():
        if folder not in sys.path:
            sys.path.append(folder)
    sources = [(__path__, f"{__name__}."), (_extra_folders(), "")]
    for path, prefix in sources:
        for info in pkgutil.iter_modules(path):
            match = PACKAGE.fullmatch(info.name)
            if not (info.ispkg and match):
                continue
            lab = importlib.import_module(prefix + info.name).LAB
            if lab.number != match.group(1) or lab.package != prefix + info.name:
                raise ImportError(f"{prefix}{info.name} declares Lab {lab.number} in package {lab.package}")
            if lab.number in found:
                raise ImportError(f"two packages declare Lab {lab.number}: {found[lab.number].package}, {lab.package}")
            found[lab.number] = lab
    return dict(sorted(found.items()))


LABS: dict[str, Lab] = discover()


def get_lab(number: str) -> Lab:
    try:
        return LABS[number]
    except KeyError:
        raise ValueError(f"no graded lab {number!r}; available: {', '.join(LABS)}") from None
