"""Labs 02 onwards through the whole grading pipeline: the learner copy holds no solution
or hidden test; the source notebook gets full marks and an untouched learner copy none,
through nbgrader autograde in the sandbox and the authoritative re-run (the lab package's judge.py).
Lab 01 has its own, longer round trip (test_grading_roundtrip.py)."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from doubleedge.grading.pipeline import CourseFolder, Submission, grade
from doubleedge.labs import LABS, get_lab

pytestmark = pytest.mark.integration

LATER = sorted(n for n in LABS if n != "01")


@pytest.fixture(scope="module", params=LATER)
def release(request, tmp_path_factory):
    lab = get_lab(request.param)
    course = CourseFolder(tmp_path_factory.mktemp(f"course{lab.number}"), lab)
    course.prepare()
    return lab, course.root / "release" / lab.slug / f"{lab.slug}.ipynb"


def test_learner_copy_has_no_solution_or_hidden_test(release):
    lab, path = release
    cells = nbformat.read(path, as_version=4).cells
    text = "\n".join(c.source for c in cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", *lab.hidden):
        assert marker not in text, marker
    solutions = [c for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all("raise NotImplementedError()" in c.source for c in solutions if c.cell_type == "code")
    assert all(c.source == "YOUR ANSWER HERE" for c in solutions if c.cell_type == "markdown")  # no model answers


def test_source_gets_full_marks_and_an_untouched_copy_none(release, tmp_path):
    lab, path = release
    for learner, notebook in (("model", lab.source_notebook), ("untouched", path)):
        (tmp_path / learner).mkdir()
        shutil.copy(notebook, tmp_path / learner / f"{lab.slug}.ipynb")
    subs = [Submission(n, tmp_path / n / f"{lab.slug}.ipynb") for n in ("model", "untouched")]
    model, untouched = grade(lab, subs, tmp_path / "course", workers=2)
    written = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in nbformat.read(lab.source_notebook, 4).cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("solution")}  # fmt: skip
    assert model.manual == dict.fromkeys(written) and model.manual_pending == sum(written.values())  # for a person
    assert model.max_score > 0 and model.score == model.max_score - model.manual_pending, model.notes
    assert not model.notes, model.notes
    assert set(model.tests) and all(model.tests.values())
    assert untouched.score == 0, untouched.tests
