"""The toy lab (tests/fixtures/toylab), found by discovery, graded like every lab: through the
``doubleedge grade`` command, nbgrader autograde in the sandbox and the authoritative re-run of
its judge on its held-out set. Its reference solution gets full marks, an untouched copy none."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from doubleedge.grading.pipeline import CourseFolder
from doubleedge.labs import discover

pytestmark = pytest.mark.integration

TOYLAB = Path(__file__).parents[1] / "fixtures" / "toylab"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_LAB_PATH", str(TOYLAB))
    return discover()["99"]


def grade(notebook: Path, learner: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "doubleedge.cli", "grade", "--lab", "99", "--notebook", str(notebook),
         "--learner", learner, "--out", str(out)],
        env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with out.open() as f:
        return next(csv.DictReader(f))


def test_toy_lab_grades_its_solution_full_and_an_untouched_copy_zero(toy, tmp_path):
    course = CourseFolder(tmp_path / "course", toy)
    course.prepare()
    release = course.root / "release" / toy.slug / f"{toy.slug}.ipynb"
    text = "\n".join(cell.source for cell in nbformat.read(release, as_version=4).cells)
    assert all(hidden not in text for hidden in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", *toy.hidden))
    untouched = tmp_path / "untouched" / f"{toy.slug}.ipynb"
    untouched.parent.mkdir()
    shutil.copy(release, untouched)
    model = grade(toy.source_notebook, "model", tmp_path / "model.csv")
    zero = grade(untouched, "untouched", tmp_path / "untouched.csv")
    assert float(model["score"]) == float(model["max_score"]) == 2, model
    assert float(zero["score"]) == 0, zero
