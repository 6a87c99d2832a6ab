"""Lab 04 through nbgrader: the learner copy holds no solution, the source gets full marks.

Plain nbgrader in a temporary course folder (the venv's nbgrader, its bin on PATH
for alembic), so the lab is checked before it is wired into the grading pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from doubleedge.grading.labs import get_lab
from doubleedge.paths import graders_dir

pytestmark = pytest.mark.integration

LAB = get_lab("04")
MAX_POINTS = 15


def nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    shutil.copy(graders_dir() / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "source" / LAB.slug).mkdir(parents=True)
    shutil.copy(LAB.source_notebook, root / "source" / LAB.slug)
    nbgrader(root, "generate_assignment", LAB.slug, "--force")
    return root


def test_learner_copy_has_no_solution_or_hidden_test(course):
    text = (course / "release" / LAB.slug / f"{LAB.slug}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "check_render", "check_order_query", "check_csp",
                   "attribute_filter=keep_shop_urls", "customer = ? AND number = ?", "onerror=\\\\\"alert(document.cookie)",
                   "logo.png?q=[DATA]", "' OR '1'='1\""):  # fmt: skip
        assert marker not in text, marker
    assert text.count("raise NotImplementedError()") == 5  # one stub per solution cell


def _autograde(course: Path, learner: str, notebook: Path) -> float:
    from nbgrader.api import Gradebook

    folder = course / "submitted" / learner / LAB.slug
    folder.mkdir(parents=True)
    shutil.copy(notebook, folder / f"{LAB.slug}.ipynb")
    nbgrader(course, "db", "student", "add", learner)
    nbgrader(course, "autograde", LAB.slug, "--student", learner, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return gradebook.find_submission(LAB.slug, learner).score


def test_source_gets_full_marks_and_the_learner_copy_none(course):
    assert _autograde(course, "model", course / "source" / LAB.slug / f"{LAB.slug}.ipynb") == MAX_POINTS
    assert _autograde(course, "untouched", course / "release" / LAB.slug / f"{LAB.slug}.ipynb") == 0
