"""The graded labs: one registry that the grader, the CLI and the tests read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doubleedge.paths import graders_dir, labs_dir


@dataclass(frozen=True)
class Lab:
    number: str
    slug: str  # folder, nbgrader assignment and notebook name

    @property
    def source_notebook(self) -> Path:
        return labs_dir() / self.slug / f"{self.slug}.ipynb"

    @property
    def heldout_attacks(self) -> Path:
        return graders_dir() / "heldout" / f"lab{self.number}.jsonl"


LABS: dict[str, Lab] = {
    "01": Lab("01", "01-prompt-injection"),
    "02": Lab("02", "02-indirect-injection"),
    "03": Lab("03", "03-sensitive-data"),
    "04": Lab("04", "04-output-handling"),
    "05": Lab("05", "05-excessive-agency"),
    "06": Lab("06", "06-supply-chain"),
    "07": Lab("07", "07-memorization"),
    "08": Lab("08", "08-governance"),
    "09": Lab("09", "09-capstone"),
}


def get_lab(number: str) -> Lab:
    try:
        return LABS[number]
    except KeyError:
        raise ValueError(f"no graded lab {number!r}; available: {', '.join(LABS)}") from None
