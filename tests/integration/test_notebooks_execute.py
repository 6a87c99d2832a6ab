"""Every lab's source notebook runs top to bottom in a real Jupyter kernel (nbval)."""

import shutil
import subprocess
import sys

import pytest

from doubleedge.labs import LABS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.slug)
def test_source_notebook_executes(lab, tmp_path):
    # A copy, so the scans the notebook writes stay out of the repository.
    notebook = shutil.copy(lab.source_notebook, tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-cell-timeout=300",
            "-p",
            "no:cacheprovider",
            "-q",
            notebook,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "passed" in done.stdout
