"""The gaming catalogue (gaming/cases.py), graded for real: each case loses the test it
tried to win, with a reason that quotes nothing held out, while the reference
solution keeps full marks. One grading run per lab (only the labs a selection needs, so
``-k 09`` grades the capstone alone), in the bubblewrap sandbox."""

from __future__ import annotations

import pytest
from gaming.cases import CASES, FULL, build

from doubleedge.grading.course import find_hidden, hidden_material
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import CourseFolder, baseline_report, find_submissions, grade_prepared
from doubleedge.grading.sandbox import Sandbox, unavailable_for_tests

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """``graded(lab)``: the lab's course folder and its rows (reference solution and cases), graded once."""
    done = {}

    def grade(number: str):
        if number not in done:
            lab = get_lab(number)
            root = tmp_path_factory.mktemp(f"gaming-{number}")
            course = CourseFolder(root / "course", lab)
            course.prepare()
            for case in (c for c in CASES if c.lab == number):
                build(case, root / "submissions" / case.learner)
            reference = root / "submissions" / f"lab{number}-reference"
            reference.mkdir(parents=True)
            (reference / lab.source_notebook.name).write_bytes(lab.source_notebook.read_bytes())
            baseline = baseline_report(lab, course.root / ".grading" / "baseline")
            rows = grade_prepared(course, find_submissions(root / "submissions", lab), baseline, workers=2,
                                  box=Sandbox())  # fmt: skip
            done[number] = (course, {r.learner: r for r in rows})
        return done[number]

    return grade


@pytest.mark.parametrize("lab", sorted(FULL))
def test_reference_solution_keeps_full_marks(graded, lab):
    _, rows = graded(lab)
    row = rows[f"lab{lab}-reference"]
    assert row.score + row.manual_pending == row.max_score == FULL[lab], row.notes  # written answers wait for a person


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.learner)
def test_each_gaming_case_loses_what_it_tried_to_win(graded, case):
    course, rows = graded(case.lab)
    row = rows[case.learner]
    assert row.score + row.manual_pending == case.score < FULL[case.lab], row.notes
    assert row.tests[case.target] == 0, row.tests
    assert any(case.reason in note for note in row.notes), row.notes
    assert not find_hidden("\n".join(row.notes), hidden_material(course, get_lab(case.lab)))
