"""The gaming catalogue (gaming/cases.py), graded for real: each case loses the over-blocking
test it tried to win, with a reason that quotes nothing held out, while the reference
solution keeps full marks. One grading run per lab, in the bubblewrap sandbox."""

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

LABS = sorted({c.lab for c in CASES})


@pytest.fixture(scope="module", params=LABS)
def graded(request, tmp_path_factory):
    lab = get_lab(request.param)
    root = tmp_path_factory.mktemp(f"gaming-{lab.number}")
    course = CourseFolder(root / "course", lab)
    course.prepare()
    for case in (c for c in CASES if c.lab == lab.number):
        build(case, root / "submissions" / case.learner)
    copy(lab.source_notebook, root / "submissions" / f"lab{lab.number}-reference")
    baseline = baseline_report(lab, course.root / ".grading" / "baseline")
    rows = grade_prepared(course, find_submissions(root / "submissions", lab), baseline, workers=2, box=Sandbox())
    return lab, course, {r.learner: r for r in rows}


def copy(source, folder):
    folder.mkdir(parents=True)
    (folder / source.name).write_bytes(source.read_bytes())


def test_reference_solution_keeps_full_marks(graded):
    lab, _, rows = graded
    row = rows[f"lab{lab.number}-reference"]
    assert row.score == FULL[lab.number], row.notes


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.learner)
def test_each_gaming_case_loses_what_it_tried_to_win(graded, case):
    lab, course, rows = graded
    if case.lab != lab.number:
        pytest.skip(f"a Lab {case.lab} case")
    row = rows[case.learner]
    assert row.score == case.score < case.before, row.notes
    assert row.tests[case.target] == 0, row.tests
    assert any(case.reason in note for note in row.notes), row.notes
    material = hidden_material(course, lab)
    assert not find_hidden("\n".join(row.notes), material)
