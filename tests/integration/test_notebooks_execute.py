"""The source notebooks' cells that a graded kernel skips run here in a real Jupyter kernel, as a
learner runs them: the ungraded cells that open SmolLM2's files, from the top to the last such
cell, and Lab 07's cells that retrain and re-scan the hardened model, top to bottom.

Every lab's source notebook also runs top to bottom where it is graded, as the reference
learner's submission (tests/grading/test_gaming.py, without errors, every cell); there the
real-model cells and Lab 07's retraining print a note instead. So only those labs run here
again. The real-file labs run only as far as that part (seconds, no model run): the cells after
it run where they are graded, and with the real model on, Lab 11's later cells would time and
fine-tune SmolLM2 (minutes; tests/integration/test_finetune_smollm2.py fine-tunes it).

nbclient rather than nbval: nbval waits a fixed 5 s for a cell's output after
the kernel replies, which a loaded 2-core machine can miss, and a missed wait
fails the notebook for no fault of its own.
"""

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from doubleedge.labs import LABS, get_lab
from doubleedge.realmodel import DEFAULT_MODEL, ENV, SKIPPED_FILES

pytestmark = pytest.mark.integration


def real_file_cells(notebook: nbformat.NotebookNode) -> list:
    """The ungraded cells that open the real model's files (ids ``real-file-*``)."""
    return [c for c in notebook.cells if c.get("id", "").startswith("real-file-")]


def run(notebook: nbformat.NotebookNode, folder) -> None:
    """Every cell of ``notebook`` in a fresh kernel working in ``folder``; raises CellExecutionError,
    naming the cell and its traceback, on the first cell that fails."""
    client = NotebookClient(notebook, kernel_name="python3", timeout=300, iopub_timeout=120, startup_timeout=120,
                            resources={"metadata": {"path": str(folder)}})  # fmt: skip
    client.execute()


OPENS_REAL_FILES = [lab for lab in LABS.values() if real_file_cells(nbformat.read(lab.source_notebook, as_version=4))]


def test_the_labs_that_open_real_model_files_are_known():
    assert [lab.number for lab in OPENS_REAL_FILES] == ["06", "11"]  # so that the test below cannot run on none


@pytest.mark.parametrize("lab", OPENS_REAL_FILES, ids=lambda lab: lab.slug)
def test_source_notebook_opens_the_real_model_files(lab, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, DEFAULT_MODEL)  # the kernel inherits it: the real-file cells run
    # A copy, so the files the notebook writes stay out of the repository.
    notebook = nbformat.read(shutil.copy(lab.source_notebook, tmp_path), as_version=4)
    last = notebook.cells.index(real_file_cells(notebook)[-1])
    notebook.cells = notebook.cells[: last + 1]
    run(notebook, tmp_path)
    ran = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    assert ran and all(cell.execution_count for cell in ran)
    real_files = real_file_cells(notebook)
    assert real_files and all(c.execution_count for c in real_files)
    assert all(SKIPPED_FILES not in "".join(o.get("text", "") for o in c.outputs) for c in real_files)


def test_lab07_retrains_and_rescans_the_hardened_model_outside_the_grader(tmp_path, monkeypatch):
    """The cells a graded kernel skips (selfcheck.graded_kernel) train, measure and scan here, with
    the run's model cache. As on a learner's machine in a class, there is no held-out set: the
    source notebook's hidden tests then check the lab's own canaries, so every model is one the
    lesson's figures train too (whichever test comes first trains it, the other reads it)."""
    from doubleedge.grading.lab07 import GRADER_RETRAINS

    monkeypatch.setenv("DOUBLEEDGE_GRADERS_DIR", str(tmp_path / "no-graders"))  # the kernel inherits it
    notebook = nbformat.read(shutil.copy(get_lab("07").source_notebook, tmp_path), as_version=4)
    run(notebook, tmp_path)
    cells = {c.id: "".join(o.get("text", "") for o in c.outputs) for c in notebook.cells if c.cell_type == "code"}
    assert not any(GRADER_RETRAINS in text for text in cells.values())
    assert "hardened (yours)" in cells["lab07-23"] and "DP-SGD, noise 1.0" in cells["lab07-23"]
    assert "perplexity ratio" in cells["lab07-25"]
    assert "Full report:" in cells["lab07-27"]
