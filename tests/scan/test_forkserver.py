"""Scans forked from the launcher (scan/forkserver.py): the same reports as a new Python's, the
output and exit code of each garak process, no library that launch.py keeps out of a scan, and
nothing in the scanning folder shadowing the launcher's libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_launch import report_records

from doubleedge.scan import ScanSpec, forkserver, scan_bot
from doubleedge.scan.launch import FORMAT_LIBRARIES, IRI_SYNTAX
from doubleedge.scan.runner import garak_env

pytestmark = pytest.mark.skipif(not forkserver.available(), reason="the launcher needs Linux's pidfds")

SPEC = ScanSpec(lab="fork", probes=("promptinject.HijackHateHumans", "encoding.InjectHex"), prompt_cap=4)


@pytest.mark.integration
def test_a_forked_scan_reports_what_a_new_python_reports(bot, tmp_path, monkeypatch):
    scan_bot(bot, SPEC, tmp_path / "forked")
    monkeypatch.setenv(forkserver.ENV, "off")
    scan_bot(bot, SPEC, tmp_path / "fresh")
    forked, fresh = (report_records(tmp_path / kind / "reports" / "scan.report.jsonl") for kind in ("forked", "fresh"))
    assert len(fresh) > 8 and forked == fresh  # attempts and evaluations of both probes
    assert "garak run complete" in (tmp_path / "forked" / "garak.out").read_text("utf-8")
    assert not (tmp_path / "fresh" / "garak.out").exists()


def test_the_launcher_loads_none_of_what_a_scan_keeps_out():
    code = (
        "import sys; from doubleedge.scan import forkserver; forkserver.preload(); "
        "print([m for m in sys.modules if m.split('.')[0] in sys.argv[1:]])"
    )
    kept_out = ["garak", "jsonschema", "httpx", "aiohttp", "nltk", "numpy", "torch", IRI_SYNTAX, *FORMAT_LIBRARIES]
    done = subprocess.run([sys.executable, "-c", code, *kept_out], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_each_process_gets_its_arguments_folder_and_environment_and_gives_its_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("GARAK_LOG_FILE", str(tmp_path / "elsewhere.log"))  # set where garak was imported
    # Each in a folder of its own, as each scan (and each part of one) has: two garak processes
    # starting at once in one folder race to copy garak's plugin cache there, and the one that
    # reads it half-copied fails.
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    launcher = forkserver.launcher(garak_env(first))
    version = launcher.start(["--version"], first, garak_env(first), tmp_path / "version.out")
    wrong = launcher.start(["--no-such-option"], second, garak_env(second), tmp_path / "wrong.out")
    assert version.wait(120) == 0 and "garak" in (tmp_path / "version.out").read_text("utf-8")
    assert wrong.wait(120) == 2 and "unrecognized arguments" in (tmp_path / "wrong.out").read_text("utf-8")
    assert version.cpu_seconds > 0
    # the environment is each process's own: garak's log goes to its scan's folder
    for folder in (first, second):
        assert (folder / "data" / "garak" / "garak.log").is_file()
    assert not (tmp_path / "elsewhere.log").exists()


def test_a_killed_process_ends_with_its_signal_and_the_launcher_ends_with_its_client(tmp_path):
    env = garak_env(tmp_path)
    launcher = forkserver.Launcher(env)
    # --interactive waits for input that never comes (its input is /dev/null: it may also just end)
    process = launcher.start(["--config", str(tmp_path / "missing.yaml"), "--interactive"], tmp_path, env,
                             tmp_path / "out")  # fmt: skip
    process.kill()
    assert process.wait(60) in (-9, 0, 1)
    launcher._process.stdin.close()  # what the client's exit does
    assert launcher._process.wait(30) == 0


@pytest.mark.integration
def test_a_library_in_the_scanning_process_folder_does_not_shadow_the_launchers(bot, tmp_path, monkeypatch):
    """A learner's notebook folder may hold a ``yaml.py`` of their own: the launcher starts there
    but never imports it in place of a library (``python -P``)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "yaml.py").write_text("raise RuntimeError('the learner yaml.py was imported')\n")
    if path := os.environ.get("PYTHONPATH"):  # as the folder changes, a relative one would point elsewhere
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(str(Path(p).resolve()) for p in path.split(os.pathsep)))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(forkserver, "_launchers", {})  # a launcher started from this folder
    report = scan_bot(bot, SPEC, tmp_path / "scan")
    assert report.results and len(forkserver._launchers) == 1  # the scan ran through a new launcher


def test_the_launcher_is_off_when_asked(monkeypatch):
    monkeypatch.setenv(forkserver.ENV, "off")
    assert not forkserver.available()
    monkeypatch.setenv(forkserver.ENV, "on")
    assert forkserver.available()
