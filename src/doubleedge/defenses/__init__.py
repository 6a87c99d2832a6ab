"""Named defenses for ``doubleedge serve --defense NAME``: one registry, used everywhere."""

from __future__ import annotations

from collections.abc import Callable

from doubleedge.defenses import lab01
from doubleedge.target import Defense


def _no_defense(secret: str) -> Defense:
    return Defense(name="none")


DEFENSES: dict[str, Callable[[str], Defense]] = {
    "none": _no_defense,
    "lab01": lab01.build_defense,
}


def get_defense(name: str, secret: str) -> Defense:
    try:
        return DEFENSES[name](secret)
    except KeyError:
        raise ValueError(f"unknown defense {name!r}; available: {', '.join(DEFENSES)}") from None
