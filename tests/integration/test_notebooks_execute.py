"""Every lab's source notebook runs top to bottom in a real Jupyter kernel.

nbclient rather than nbval: nbval waits a fixed 5 s for a cell's output after
the kernel replies, which a loaded 2-core machine can miss (Lab 07 trains three
models in one cell), and a missed wait fails the notebook for no fault of its own.
"""

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from doubleedge.labs import LABS
from doubleedge.realmodel import DEFAULT_MODEL, ENV, OFF, SKIPPED, SKIPPED_FILES

pytestmark = pytest.mark.integration

OPENS_REAL_FILES = {"06"}  # labs whose ungraded cells open SmolLM2's files ("real-file-*" cells)


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.slug)
def test_source_notebook_executes(lab, tmp_path, monkeypatch):
    # The kernel inherits this: the ungraded real-model part prints that it skipped (tested in
    # tests/test_realmodel.py) instead of spending minutes on SmolLM2. Lab 06's real part only
    # opens SmolLM2's files (seconds, no model run): it runs here as a learner runs it, and is
    # skipped where it is graded (tests/grading/test_gaming.py).
    monkeypatch.setenv(ENV, DEFAULT_MODEL if lab.number in OPENS_REAL_FILES else OFF)
    # A copy, so the scans the notebook writes stay out of the repository.
    notebook = nbformat.read(shutil.copy(lab.source_notebook, tmp_path), as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        iopub_timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # Raises CellExecutionError, naming the cell and its traceback, on the first
    # cell that fails (cells tagged raises-exception are allowed to).
    client.execute()
    ran = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    assert ran and all(cell.execution_count for cell in ran)
    for cell in (c for c in ran if c.get("id") == "real-model"):
        assert "".join(o.get("text", "") for o in cell.outputs) == SKIPPED + "\n"  # one print, maybe two chunks
    real_files = [c for c in ran if c.get("id", "").startswith("real-file-")]
    assert bool(real_files) == (lab.number in OPENS_REAL_FILES)
    assert all(SKIPPED_FILES not in "".join(o.get("text", "") for o in c.outputs) for c in real_files)
