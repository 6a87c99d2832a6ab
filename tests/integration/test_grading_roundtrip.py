"""nbgrader round trip: generate the learner copy, autograde submissions, authoritative scores."""

import csv
import json

import nbformat
import pytest
from submissions import edited

from doubleedge.grading.pipeline import CourseFolder, Submission, grade, write_csv
from doubleedge.labs import get_lab

pytestmark = pytest.mark.integration

LAB = get_lab("01")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    course = CourseFolder(tmp_path_factory.mktemp("course"), LAB)
    course.prepare()
    return course.root / "release" / LAB.slug / f"{LAB.slug}.ipynb"


def test_learner_copy_has_no_solution_or_hidden_test(release):
    text = release.read_text()
    for marker in (
        "BEGIN SOLUTION",
        "END SOLUTION",
        "BEGIN HIDDEN TESTS",
        "check_injection",
        "squash(secret)",
        'HARDENED_SYSTEM_PROMPT = """You are Bell',
    ):
        assert marker not in text
    assert "raise NotImplementedError()" in text


@pytest.fixture(scope="module")
def graded(release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    source = LAB.source_notebook
    (folder / "model").mkdir()
    (folder / "untouched").mkdir()
    (folder / "tamper").mkdir()
    (folder / "broken").mkdir()
    (folder / "other-lab").mkdir()
    subs = [
        Submission("model", edited(source, folder / "model" / "a.ipynb")),
        Submission("untouched", edited(release, folder / "untouched" / "a.ipynb")),
        # a wrong injection, and the test cell that checks it replaced by a no-op
        Submission(
            "tamper",
            edited(source, folder / "tamper" / "a.ipynb", injection='MY_INJECTION = "hello"', test_injection="pass"),
        ),
        Submission("broken", folder / "broken" / "a.ipynb"),
        Submission("other-lab", folder / "other-lab" / "a.ipynb"),
        Submission("empty", folder / "empty" / "a.ipynb"),
    ]
    (folder / "broken" / "a.ipynb").write_text('{"cells": [', "utf-8")
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), folder / "other-lab" / "a.ipynb"
    )
    course_root = tmp_path_factory.mktemp("graded") / "course"
    rows = grade(LAB, subs, course_root)
    out = tmp_path_factory.mktemp("out") / "grades.csv"
    write_csv(rows, out)
    return {r.learner: r for r in rows}, out, CourseFolder(course_root, LAB)


def test_source_notebook_gets_full_marks(graded):
    row = graded[0]["model"]
    assert row.max_score == 14 and row.score == 13.5, row.notes  # and 0.5 for the reading, from a person
    assert row.manual == {"scan_reading": None} and row.manual_pending == 0.5
    assert row.metrics["attack_success_rate"] < 0.10 and row.metrics["benign_pass_rate"] >= 0.9


def test_untouched_learner_copy_gets_nothing(graded):
    row = graded[0]["untouched"]
    assert row.score == 0
    assert row.tests["test_hardening_asr"] == 0 and row.tests["test_hardening_benign"] == 0
    assert any("NotImplementedError" in n for n in row.notes)


def test_edited_test_cell_is_caught_and_does_not_help(graded):
    row = graded[0]["tamper"]
    assert row.tests["test_injection"] == 0
    assert any("test_injection: test cell was modified" in n for n in row.notes)
    assert row.tests["test_hardening_asr"] == 2  # the rest of the work still counts


@pytest.mark.parametrize(
    "learner, reason",
    [
        ("broken", "not a valid notebook"),
        ("other-lab", "not the Lab 01 notebook"),
        ("empty", "no notebook submitted"),
    ],
)
def test_bad_submissions_get_a_clear_reason_and_zero(graded, learner, reason):
    row = graded[0][learner]
    assert row.score == 0 and row.max_score == 14
    assert any(reason in n for n in row.notes)


def test_csv_has_one_row_per_learner(graded):
    rows = list(csv.DictReader(graded[1].open()))
    assert [r["learner"] for r in rows] == ["model", "untouched", "tamper", "broken", "other-lab", "empty"]
    assert rows[0]["score"] == "13.5" and json.loads(rows[0]["benign_pass_rate"]) >= 0.9
    # the written reading: empty until a person grades it, and the points that wait for one
    assert (rows[0]["scan_reading"], rows[0]["manual_pending"]) == ("", "0.5")
    assert list(rows[0])[-3:] == ["scan_reading", "manual_pending", "notes"]  # the older columns keep their place


def test_the_reading_waits_for_a_person_whose_score_a_regrade_keeps(graded):
    from nbgrader.api import Gradebook

    from doubleedge.grading.course import with_person_scores
    from doubleedge.grading.pipeline import Outcome, record

    course = graded[2]
    with Gradebook(course.gradebook_url) as gradebook:
        reading = gradebook.find_grade("scan_reading", LAB.slug, LAB.slug, "model")
        assert reading.needs_manual_grade and reading.auto_score is None  # formgrader lists it to grade
        reading.manual_score = 0.25  # what a person does in formgrader
        gradebook.db.commit()
    passed = dict.fromkeys(graded[0]["model"].tests, True)
    again = Outcome(Submission("model", course.submitted_path("model")), accepted=True, passed=passed,
                    autograded=course.autograded_dir("model"))  # fmt: skip
    row = record(course, again)  # what grading the class again writes for this learner
    assert row.manual == {"scan_reading": 0.25} and row.manual_pending == 0
    assert row.score == 13.75 and row.max_score == 14
    with Gradebook(course.gradebook_url) as gradebook:
        assert not gradebook.find_grade("scan_reading", LAB.slug, LAB.slug, "model").needs_manual_grade
    # the feedback page's notes read the person's score from the gradebook, not from the last grading run
    stale = {"learner": "model", "score": 13.5, "manual": {"scan_reading": None}}
    assert with_person_scores(course, stale) == {"learner": "model", "score": 13.75, "manual": {"scan_reading": 0.25}}
