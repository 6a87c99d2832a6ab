"""A learner who fetched an earlier release of a lab is not told they modified its test cells."""

import hashlib
import shutil

import nbformat
import pytest

from doubleedge.grading.pipeline import CourseFolder, _modified_test_cells, visible_part
from doubleedge.labs import LABS, get_lab

# Lab 01's preview as the release before the preview read the learner's re-scan showed it.
LAB01_EARLIER = '''"""Checks the hardened bot's attack success rate (a preview: the grader adds held-out attacks)."""
runs_alone("hardening")
from doubleedge.grading.lab01 import evaluate_hardening, hardened_bot
_result = evaluate_hardening(hardened_bot(build_defense, LEARNER), heldout=[])
print(_result.metrics())
grader_checks("the attack success rate, garak's and the held-out attacks' averaged, is below 10%")
'''


@pytest.fixture()
def course(tmp_path):
    lab = get_lab("01")
    source = tmp_path / "source" / lab.slug
    source.mkdir(parents=True)
    shutil.copy(lab.source_notebook, source / f"{lab.slug}.ipynb")
    return CourseFolder(tmp_path, lab)


def with_cell(course: CourseFolder, grade_id: str, source: str):
    nb = nbformat.read(course.lab.source_notebook, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb


def test_the_earlier_release_of_a_test_cell_is_not_called_modified(course):
    assert _modified_test_cells(with_cell(course, "test_hardening_asr", LAB01_EARLIER), course) == []


def test_any_other_text_still_is(course):
    edited = LAB01_EARLIER.replace("heldout=[]", "heldout=[], ordinary=()")
    notes = _modified_test_cells(with_cell(course, "test_hardening_asr", edited), course)
    assert notes == ["test_hardening_asr: test cell was modified; the original was restored for grading"]


@pytest.mark.parametrize("lab", [lab for lab in LABS.values() if lab.earlier_test_cells], ids=lambda lab: lab.number)
def test_earlier_digests_name_test_cells_of_other_text(lab):
    """Each entry is a locked cell of the lab, and none is today's text (that would hide nothing)."""
    nb = nbformat.read(lab.source_notebook, as_version=4)
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked")}
    for grade_id, digests in lab.earlier_test_cells.items():
        today = hashlib.sha256(visible_part(cells[grade_id].source).encode()).hexdigest()
        assert today not in digests and all(len(d) == 64 for d in digests)
