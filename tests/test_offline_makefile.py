"""The Makefile's offline install: with DOUBLEEDGE_WHEELHOUSE set, no install step asks a registry.

Read from ``make -n`` (what make would run), so nothing is installed here; the real install
from a real wheelhouse is ``tests/integration/test_wheelhouse_install.py``.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from doubleedge.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def planned(*args: str) -> list[str]:
    """The commands make would run."""
    run = make("-n", *args)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def pip_calls(lines: list[str]) -> list[str]:
    return [line for line in lines if " -m pip " in line]


def test_every_pip_call_of_the_install_reads_only_the_wheelhouse(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    venv = tmp_path / "v"
    calls = pip_calls(planned(f"{venv}/.installed-stamp", f"VENV={venv}", f"DOUBLEEDGE_WHEELHOUSE={wheelhouse}"))
    assert len(calls) == 4  # pip itself, torch, the project with its test extras, the model package
    for call in calls:
        assert f"--no-index --find-links {wheelhouse} " in call, call


def test_without_the_variable_the_install_uses_the_registry_as_before(tmp_path):
    venv = tmp_path / "v"
    lines = planned(f"{venv}/.installed-stamp", f"VENV={venv}")
    calls = pip_calls(lines)
    assert len(calls) == 4
    assert not any("--no-index" in call or "--find-links" in call for call in calls)
    assert not any("sha256sum" in line for line in lines)


def test_the_debian_packages_and_the_proxy_come_from_the_wheelhouse(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    venv = tmp_path / "v"
    variables = (f"VENV={venv}", f"DOUBLEEDGE_WHEELHOUSE={wheelhouse}")
    grading = planned("-o", f"{venv}/.installed-stamp", f"{venv}/.grading-stamp", *variables)  # venv taken as made
    browser = planned("browser", *variables)
    apt_calls = [line for line in grading + browser if " install -y -qq " in line]
    assert len(apt_calls) == 2  # bubblewrap, chromium
    for call in apt_calls:
        assert f"file:{wheelhouse}/debs ./" in call and "Dir::Etc::SourceParts=/dev/null" in call
    (npm,) = [line for line in grading if "npm install" in line]
    assert f"--offline --cache {wheelhouse}/npm-cache" in npm


def test_a_wheelhouse_that_fails_its_checksums_stops_the_install(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "a.whl").write_bytes(b"as built")
    sums = subprocess.run(["sha256sum", "a.whl"], cwd=wheelhouse, capture_output=True, text=True, check=True)
    (wheelhouse / "SHA256SUMS").write_text(sums.stdout)
    (wheelhouse / "a.whl").write_bytes(b"changed on the way")
    venv = tmp_path / "v"
    run = make(str(venv / ".installed-stamp"), f"VENV={venv}", f"DOUBLEEDGE_WHEELHOUSE={wheelhouse}")
    assert run.returncode != 0
    assert "FAILED" in run.stdout + run.stderr
    assert not venv.exists()  # stopped before the venv was made


@pytest.mark.parametrize(("target", "command"), [("test", " -m pytest "), ("start", "doubleedge start ")])
def test_the_kit_is_compiled_before_the_command_runs(target, command):
    """Where PYTHONDONTWRITEBYTECODE is set (CI) and in the grading sandbox, no process writes
    compiled modules: each would compile the kit again unless make compiled it first."""
    lines = planned(target)
    compiled = [i for i, line in enumerate(lines) if line.endswith("-m compileall -q src")]
    runs = [i for i, line in enumerate(lines) if command in line]
    assert compiled and runs and compiled[0] < runs[0], lines
