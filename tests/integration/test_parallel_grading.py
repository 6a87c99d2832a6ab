"""Parallel grading: the same CSV and gradebook whatever the number of workers."""

import sqlite3

import pytest
from submissions import edited

from doubleedge.grading.pipeline import CourseFolder, Submission, grade, write_csv
from doubleedge.grading.sandbox import make_sandbox, unavailable_for_tests
from doubleedge.labs import get_lab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]

LAB = get_lab("01")



@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    release = tmp_path_factory.mktemp("release-course")
    course = CourseFolder(release, LAB)
    course.prepare()
    learner_copy = course.root / "release" / LAB.slug / f"{LAB.slug}.ipynb"
    (folder / "broken").mkdir()
    (folder / "broken" / "a.ipynb").write_text("{", "utf-8")
    return [
        Submission("ann", edited(LAB.source_notebook, folder / "ann" / "a.ipynb")),
        Submission("ben", edited(learner_copy, folder / "ben" / "a.ipynb")),
        Submission("cat", edited(LAB.source_notebook, folder / "cat" / "a.ipynb",
                                  scan_answers='MOST_SUCCESSFUL_PROBE = "dan.STAN"\nOVERALL_ASR = 0.1')),
        Submission("broken", folder / "broken" / "a.ipynb"),
        Submission("dan", edited(LAB.source_notebook, folder / "dan" / "a.ipynb", injection='MY_INJECTION = "hi"')),
    ]  # fmt: skip


def _graded(submissions, root, workers):
    rows = grade(LAB, submissions, root / "course", workers=workers, box=make_sandbox("bwrap"))
    write_csv(rows, root / "grades.csv")
    return rows, (root / "grades.csv").read_text("utf-8"), root / "course" / "gradebook.db"


def test_same_csv_and_gradebook_with_one_or_three_workers(submissions, tmp_path):
    serial_rows, serial_csv, serial_db = _graded(submissions, tmp_path / "serial", 1)
    parallel_rows, parallel_csv, parallel_db = _graded(submissions, tmp_path / "parallel", 3)
    assert parallel_csv == serial_csv
    assert [r.learner for r in parallel_rows] == ["ann", "ben", "cat", "broken", "dan"]
    # 0.5 of the 11 points (the written reading) wait for a person
    assert parallel_rows[0].score == 10.5 and parallel_rows[1].score == 0 and parallel_rows[4].score == 7.5

    def scores(db):
        from nbgrader.api import Gradebook

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with Gradebook(f"sqlite:///{db}") as gradebook:
            return sorted(
                (student.id, grade.name, grade.auto_score)
                for student in gradebook.students
                for submission in student.submissions
                for notebook in submission.notebooks
                for grade in notebook.grades
            )

    assert scores(parallel_db) == scores(serial_db)
    assert len(scores(parallel_db)) == 4 * 8  # four notebooks in the gradebook: seven tests and the reading each
