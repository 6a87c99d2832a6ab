"""The hostile catalogue (hostile/cases.py), graded as one class: all contained, nothing lost.

One grading run with two workers and short, explicit limits (so the infinite loops
cost seconds), then: every case has its expected score and recorded reason, the
host, the repository and the gradebook are untouched, the kernels never saw a
hidden test, the feedback carries no hidden material, and a regrade agrees.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hostile.cases import CASES, LAB, MAX, Context, build_all

from doubleedge.grading.course import Course, find_hidden, hidden_material
from doubleedge.grading.pipeline import CourseFolder, find_submissions, grade_prepared
from doubleedge.grading.sandbox import Limits, Sandbox, unavailable_for_tests
from doubleedge.paths import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]

# Short limits: a cell gets 12 s, a notebook 60 s (a loaded machine needs the room), a process 20 s of CPU.
LIMITS = Limits(cell_seconds=12, notebook_seconds=60, cpu_seconds=20, call_seconds=5, run_seconds=90)
REGRADED = ["infinite-loop", "kill-everything", "forge-result", "huge-output", "malformed-json"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, class_baseline):
    root = tmp_path_factory.mktemp("hostile")
    course = CourseFolder(root / "course", LAB)
    course.prepare()
    build_all(root / "submissions", Context(course.root, REPO_ROOT))
    protected = [LAB.source_notebook, LAB.heldout_attacks, course.root / "source" / LAB.slug / f"{LAB.slug}.ipynb"]
    before = {p: _digest(p) for p in protected}
    baseline = class_baseline(LAB.number)
    submissions = find_submissions(root / "submissions", LAB)
    rows = grade_prepared(course, submissions, baseline, workers=2, box=Sandbox(LIMITS))
    return {
        "course": course,
        "rows": {r.learner: r for r in rows},
        "before": before,
        "submissions": submissions,
        "baseline": baseline,
    }


def test_catalogue_covers_the_issue():
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_case_is_contained_with_its_reason(graded, case):
    row = graded["rows"][case.name]
    assert row.score == case.score, row.notes
    assert row.max_score == MAX
    assert any(case.reason in note for note in row.notes), row.notes


def test_honest_work_in_hostile_submissions_still_counts(graded):
    """Nothing lost: the cells around the hostile one keep their points."""
    for name in ("read-source", "fork-bomb", "stubborn-loop", "kill-everything", "memory-bomb"):
        tests = graded["rows"][name].tests
        assert tests["test_injection"] == 2 and tests["test_hardening_asr"] == 2, (name, tests)


def test_host_files_and_repository_are_untouched(graded):
    for path, digest in graded["before"].items():
        assert _digest(path) == digest, path
    assert not Path("/tmp/gb").exists()


def test_gradebook_is_intact_and_holds_the_authoritative_scores(graded):
    from nbgrader.api import Gradebook

    course = graded["course"]
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Gradebook(course.gradebook_url) as gradebook:
        for name, row in graded["rows"].items():
            if row.score:
                assert gradebook.find_submission(LAB.slug, name).score == row.score


def test_kernels_never_saw_a_hidden_test(graded):
    course = graded["course"]
    material = hidden_material(course, LAB)
    notebooks = list((course.root / "autograded").rglob("*.ipynb"))
    assert len(notebooks) >= 10
    for notebook in notebooks:
        assert not find_hidden(notebook.read_text("utf-8"), material), notebook


def test_feedback_is_checked_and_has_no_hidden_material(graded):
    course = graded["course"]
    pages = Course(course.root).feedback(LAB)
    assert pages
    material = hidden_material(course, LAB)
    for page in pages:
        text = page.read_text("utf-8")
        assert not find_hidden(text, material) and "BEGIN HIDDEN TESTS" not in text


def test_regrading_gives_the_same_result(graded):
    subset = [s for s in graded["submissions"] if s.learner in REGRADED]
    rows = grade_prepared(graded["course"], subset, graded["baseline"], workers=2, box=Sandbox(LIMITS))
    for row in rows:
        first = graded["rows"][row.learner]
        assert (row.score, row.tests, row.notes) == (first.score, first.tests, first.notes), row.learner
