"""Named defenses for ``doubleedge serve --defense NAME``: one registry, used everywhere."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from doubleedge.defenses import lab01, lab02, lab03
from doubleedge.defenses.levels import LEVELS, build_level
from doubleedge.target import Defense


def _no_defense(secret: str) -> Defense:
    return Defense(name="none")


DEFENSES: dict[str, Callable[[str], Defense]] = {
    "none": _no_defense,
    "lab01": lab01.build_defense,
    "lab02": lab02.build_defense,
    "lab03": lab03.build_defense,
    **{name: partial(build_level, int(name[1:])) for name in LEVELS},
}


def get_defense(name: str, secret: str) -> Defense:
    try:
        return DEFENSES[name](secret)
    except KeyError:
        raise ValueError(f"unknown defense {name!r}; available: {', '.join(DEFENSES)}") from None
