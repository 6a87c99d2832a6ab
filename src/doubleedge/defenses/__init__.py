"""Named defenses of the support bot for ``doubleedge serve --defense NAME``: no defense, the
reference solution of each lab on the support bot that declares one (doubleedge.labs), and
the defense levels."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial

from doubleedge.defenses.levels import LEVELS, build_level
from doubleedge.labs import LABS
from doubleedge.labs.targets import SUPPORT_BOT
from doubleedge.target import Defense


def _no_defense(secret: str) -> Defense:
    return Defense(name="none")


DEFENSES: dict[str, Callable[[str], Defense]] = {
    "none": _no_defense,
    **{
        lab.defense: importlib.import_module(lab.solution).build_defense
        for lab in LABS.values()
        if lab.target is SUPPORT_BOT and lab.defense and lab.solution
    },
    **{name: partial(build_level, int(name[1:])) for name in LEVELS},
}


def get_defense(name: str, secret: str) -> Defense:
    try:
        return DEFENSES[name](secret)
    except KeyError:
        raise ValueError(f"unknown defense {name!r}; available: {', '.join(DEFENSES)}") from None
