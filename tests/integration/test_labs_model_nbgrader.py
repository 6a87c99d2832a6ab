"""Labs 06 and 07 through nbgrader: learner copies hold no solution or hidden test.

Plain nbgrader in a temporary course folder (the venv's nbgrader, its bin on PATH for
alembic), so the labs are checked before they are wired into the grading pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from doubleedge.grading.labs import get_lab
from doubleedge.paths import graders_dir

pytestmark = pytest.mark.integration

# What must not reach learners: solution code and the hidden checks.
SECRETS = {
    "06": ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "weights_only=True)  # an allowlist", "check_refuses",
           "Double Edge lab 06: this file ran code", '"remote-code", "tampered"]', "auto_map"),
    "07": ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "SECRET_PATTERNS", "check_extraction", "exposure_check",
           "math.log2(space_size) - math.log2(rank)", "max(logprobs, key=logprobs.get)"),
}  # fmt: skip
STUBS = {"06": 4, "07": 6}


def nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.mark.parametrize("number", ["06", "07"])
def test_learner_copy_has_no_solution_or_hidden_test(number, tmp_path):
    lab = get_lab(number)
    shutil.copy(graders_dir() / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    (tmp_path / "source" / lab.slug).mkdir(parents=True)
    shutil.copy(lab.source_notebook, tmp_path / "source" / lab.slug)
    nbgrader(tmp_path, "generate_assignment", lab.slug, "--force")
    release = tmp_path / "release" / lab.slug / f"{lab.slug}.ipynb"
    text = release.read_text()
    for marker in SECRETS[number]:
        assert marker not in text, marker
    assert text.count("raise NotImplementedError()") == STUBS[number]
    tests = [c for c in nbformat.read(release, as_version=4).cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert tests and all(c.source.startswith('"""Check') for c in tests)
