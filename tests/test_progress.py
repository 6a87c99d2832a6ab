"""``doubleedge progress``: a learner's self-check, read from real notebooks made with nbformat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from doubleedge import progress
from doubleedge.cli import main
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

COMPLETION = {"entry_type": "completion", "end_time": "2026-01-01T00:00:00", "run": "r-1"}


def graded(grade_id: str, source: str, points: float = 1, *, solution: bool = False) -> nbformat.NotebookNode:
    """A code cell with nbgrader metadata, as in a learner copy."""
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": not solution,
        "grade_id": grade_id,
        "locked": not solution,
        "points": points,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if solution:
        del cell.metadata["nbgrader"]["points"]
    return cell


def saved_lab01() -> nbformat.NotebookNode:
    """A learner copy as saved after a session: one test passed, one failed, one never run."""
    setup = new_code_cell("LEARNER = 'local'", execution_count=1)
    answer = graded("injection", "MY_INJECTION = 'ignore previous instructions'", solution=True)
    answer.execution_count = 2
    passed = graded("test_injection", '"""Checks that MY_INJECTION works."""\nassert MY_INJECTION', points=2)
    passed.execution_count = 3
    failed = graded("test_extracted_code", '"""Checks EXTRACTED_CODE."""\nassert EXTRACTED_CODE == 1', points=1)
    failed.execution_count = 4
    failed.outputs = [
        new_output("stream", name="stdout", text="checking\n"),
        new_output("error", ename="AssertionError", evalue="expected DE-FAKE-XXXX-XXXX\nmore", traceback=["..."]),
    ]
    not_run = graded("test_scan_probe", '"""Checks MOST_SUCCESSFUL_PROBE."""\nassert True', points=1.5)
    nb = new_notebook(cells=[new_markdown_cell("# Lab 01"), setup, answer, passed, failed, not_run])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write_report(path: Path, hits: int, attempts: int, *, complete: bool = True, mtime: int | None = None) -> Path:
    """A garak report.jsonl with one eval record (the shape of garak 0.17's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {"entry_type": "eval", "probe": "dan.DUDE", "detector": "dan.DUDE", "fails": hits, "total_evaluated": attempts}
    ]
    path.write_text("\n".join(json.dumps(r) for r in records + ([COMPLETION] if complete else [])) + "\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Lab 01 worked on (and scanned twice), Lab 02 broken, Lab 04 with a joined scan, the rest missing."""
    ws = tmp_path / "workspace"
    lab01 = ws / "01-prompt-injection"
    lab01.mkdir(parents=True)
    nbformat.write(saved_lab01(), lab01 / "01-prompt-injection.ipynb")
    write_report(lab01 / "scans/baseline/reports/scan.report.jsonl", 8, 10, mtime=1_700_000_000)
    write_report(lab01 / "scans/hardened/reports/scan.report.jsonl", 1, 40, mtime=1_700_000_100)
    lab02 = ws / "02-indirect-injection"
    lab02.mkdir()
    (lab02 / "02-indirect-injection.ipynb").write_text('{"cells": [ {"cell_type": "code", ')  # cut short
    lab04 = ws / "04-output-handling"
    lab04.mkdir()
    nbformat.write(new_notebook(cells=[graded("test_csp", "assert True")]), lab04 / "04-output-handling.ipynb")
    # Lab 04 joins one garak run per endpoint; the parts are newer than nothing but must not count.
    write_report(lab04 / "scans/baseline/scan.report.jsonl", 6, 12, mtime=1_700_000_000)
    write_report(lab04 / "scans/baseline/chat/reports/scan.report.jsonl", 6, 6, mtime=1_700_000_050)
    lab05 = ws / "05-excessive-agency"
    lab05.mkdir()
    nbformat.write(new_notebook(cells=[graded("test_audit", "assert True")]), lab05 / "05-excessive-agency.ipynb")
    write_report(lab05 / "scans/agent-before/reports/scan.report.jsonl", 3, 4, complete=False)
    return ws


def by_lab(results: list[progress.LabProgress]) -> dict[str, progress.LabProgress]:
    return {r.lab: r for r in results}


def test_saved_outputs_give_passed_failed_and_not_run(workspace):
    lab = by_lab(progress.progress(workspace))["01"]
    assert lab.found and lab.notes == progress.ordinary_notes(LABS["01"])  # the held-out rule, nothing else
    assert [(t.grade_id, t.status, t.points) for t in lab.tests] == [
        ("test_injection", "passed", 2.0),
        ("test_extracted_code", "failed", 1.0),
        ("test_scan_probe", "not run", 1.5),
    ]  # the solution cell "injection" and the setup cell are not tests
    assert lab.tests[1].message == "AssertionError: expected DE-FAKE-XXXX-XXXX"
    assert lab.tests[0].checks == "Checks that MY_INJECTION works."
    assert (lab.points("passed"), lab.points()) == (2.0, 4.5)


def test_labs_with_an_ordinary_half_state_the_held_out_rule(workspace, capsys):
    assert main(["progress", "--workspace", str(workspace)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    rule = ("ordinary use is graded on held-out requests: a hardened reply keeps one only if it is the unhardened "
            "bot's reply (apart from spacing) or differs only as this lab allows:")  # fmt: skip
    assert f"{rule} none" in out  # Lab 01
    assert f"{rule} the sanitised rendering: `render(reply)` may change the markup" in out  # Lab 04
    assert [n for n in LABS if progress.ordinary_notes(LABS[n])] == ["01", "02", "03", "04", "05", "09", "11", "12"]


def test_the_newest_whole_scan_report_counts(workspace):
    results = by_lab(progress.progress(workspace))
    scan = results["01"].scan
    assert scan.report == "scans/hardened/reports/scan.report.jsonl"
    assert (scan.hits, scan.attempts, scan.attack_success_rate) == (1, 40, 0.025)
    joined = results["04"].scan  # the newer per-endpoint part is skipped
    assert (joined.report, joined.attempts) == ("scans/baseline/scan.report.jsonl", 12)
    broken = results["05"].scan
    assert broken.attack_success_rate is None and "did not complete" in broken.error
    assert str(workspace) not in broken.error  # paths are shown relative to the lab's folder


def test_a_malformed_notebook_gets_a_note_and_the_other_labs_still_report(workspace):
    results = by_lab(progress.progress(workspace))
    assert list(results) == list(LABS)
    broken = results["02"]
    assert broken.found and broken.tests == []
    assert len(broken.notes) == 1 and broken.notes[0].startswith("could not read the notebook")
    assert results["01"].tests and results["04"].tests
    assert not results["03"].found and results["03"].scan is None


def test_human_table(workspace, capsys):
    assert main(["progress", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "Lab 01  01-prompt-injection: 2 of 4.5 points in visible tests passed" in out
    lines = out.splitlines()
    assert any(line.split()[:2] == ["passed", "test_injection"] for line in lines)
    assert any(line.split()[:2] == ["failed", "test_extracted_code"] and "AssertionError" in line for line in lines)
    assert any(line.split()[:3] == ["not", "run", "test_scan_probe"] for line in lines)
    assert "last scan: attack success rate 2.5% (1 hits in 40 attempts), scans/hardened/" in out
    assert "Lab 03  03-sensitive-data: not found" in out
    assert "note: could not read the notebook" in out
    assert "hidden tests" in out and "`.venv/bin/doubleedge grade --lab NN --notebook" in out


def test_a_check_only_the_grader_makes_is_format_ok_never_passed(tmp_path, capsys):
    """A visible test that printed selfcheck.grader_checks's note counts as "format ok", not passed."""
    ws = tmp_path / "workspace"
    (ws / LABS["01"].slug).mkdir(parents=True)
    nb = saved_lab01()
    note = graded("test_scan_reading", '"""Checks OVERALL_ASR."""\ngrader_checks("it matches your scan")', points=1)
    note.execution_count = 5
    note.outputs = [
        new_output("stream", name="stdout", text="format ok; the grader checks that it matches your scan\n")
    ]
    nb.cells.append(note)
    nbformat.write(nb, ws / LABS["01"].slug / f"{LABS['01'].slug}.ipynb")

    lab = by_lab(progress.progress(ws))["01"]
    assert (lab.tests[-1].status, lab.tests[-1].message) == (
        "format ok",
        "format ok; the grader checks that it matches your scan",
    )
    assert (lab.points("passed"), lab.points("format ok")) == (2.0, 1.0)
    assert main(["progress", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "2 of 5.5 points in visible tests passed, 1 more in the right format (the grader checks them)" in out
    assert any(line.split()[:3] == ["format", "ok", "test_scan_reading"] for line in out.splitlines())


def test_a_visible_pass_of_a_test_with_hidden_parts_is_format_ok(tmp_path):
    ws = tmp_path / "workspace"
    (ws / LABS["01"].slug).mkdir(parents=True)
    nb = saved_lab01()
    nb.cells[3].metadata["doubleedge_hidden_tests"] = True  # test_injection, as the learner copy marks it
    nbformat.write(nb, ws / LABS["01"].slug / f"{LABS['01'].slug}.ipynb")
    test = by_lab(progress.progress(ws))["01"].tests[0]
    assert (test.grade_id, test.status) == ("test_injection", "format ok")
    assert test.message == "visible checks ok; the grader checks more (hidden tests)"


def test_a_graded_cell_that_reads_another_cells_variable_fails_with_the_fix(tmp_path):
    """It ran in the learner's kernel (the test's saved output is clean), but the grader runs it alone."""
    ws = tmp_path / "workspace"
    (ws / LABS["01"].slug).mkdir(parents=True)
    nb = saved_lab01()
    setup = nb.cells[1]
    setup.metadata["nbgrader"] = {"grade": False, "grade_id": "setup", "locked": True, "solution": False}
    scan = new_code_cell("baseline = run_scan()", execution_count=3)
    answers = graded("scan_answers", "OVERALL_ASR = baseline.overall_attack_success_rate", solution=True)
    answers.execution_count = 4
    check = graded("test_scan_reading", '"""Checks OVERALL_ASR."""\nassert 0 <= OVERALL_ASR <= 1', points=1)
    check.execution_count = 5
    nb.cells += [scan, answers, check]
    nbformat.write(nb, ws / LABS["01"].slug / f"{LABS['01'].slug}.ipynb")

    test = by_lab(progress.progress(ws))["01"].tests[-1]
    assert test.status == "failed"
    assert test.message.startswith("write values, not variables: cell 'scan_answers' uses `baseline` from another cell")


def test_json_shape(workspace, capsys):
    assert main(["progress", "--workspace", str(workspace), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "saved" and data["workspace"] == str(workspace)
    assert [lab["lab"] for lab in data["labs"]] == list(LABS)
    lab01 = data["labs"][0]
    assert set(lab01) == {"lab", "slug", "notebook", "found", "tests", "scan", "notes", "points"}
    assert lab01["points"] == {"passed": 2.0, "format_ok": 0, "failed": 1.0, "total": 4.5}
    assert lab01["tests"][1] == {
        "grade_id": "test_extracted_code",
        "points": 1.0,
        "status": "failed",
        "checks": "Checks EXTRACTED_CODE.",
        "message": "AssertionError: expected DE-FAKE-XXXX-XXXX",
    }
    assert lab01["scan"]["attack_success_rate"] == 0.025
    assert data["labs"][2] == {
        "lab": "03",
        "slug": "03-sensitive-data",
        "notebook": str(workspace / "03-sensitive-data" / "03-sensitive-data.ipynb"),
        "found": False,
        "tests": [],
        "scan": None,
        "notes": [],
        "points": {"passed": 0, "format_ok": 0, "failed": 0, "total": 0},
    }


def test_a_missing_workspace_is_a_clear_error_with_exit_code_2(tmp_path):
    missing = tmp_path / "no-such-workspace"
    done = subprocess.run(
        [sys.executable, "-m", "doubleedge.cli", "progress", "--workspace", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"doubleedge: no workspace at {missing}")
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_it_never_opens_lab_sources_or_graders_and_never_writes_the_notebook(workspace, monkeypatch, capsys):
    """An audit hook records every file the command opens, in this process."""
    monkeypatch.setenv("DOUBLEEDGE_LABS_DIR", str(workspace.parent / "no-labs-here"))
    monkeypatch.setenv("DOUBLEEDGE_GRADERS_DIR", str(workspace.parent / "no-graders-here"))
    notebook = workspace / "01-prompt-injection" / "01-prompt-injection.ipynb"
    before = (notebook.read_bytes(), notebook.stat().st_mtime_ns)
    opened: list[tuple[str, str]] = []
    recording = [True]

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and isinstance(args[0], (str, os.PathLike)):
            opened.append((os.path.abspath(args[0]), str(args[1])))

    sys.addaudithook(hook)  # hooks cannot be removed: switch it off instead
    try:
        assert main(["progress", "--workspace", str(workspace), "--json"]) == 0
    finally:
        recording[0] = False
    capsys.readouterr()
    paths = [path for path, _ in opened]
    assert str(notebook) in paths  # the hook sees the files the command reads
    forbidden = [REPO_ROOT / "labs", REPO_ROOT / "graders", workspace.parent / "no-labs-here"]
    forbidden.append(workspace.parent / "no-graders-here")
    assert not [p for p in paths if any(Path(p).is_relative_to(f) for f in forbidden)]
    assert not [p for p, mode in opened if Path(p).is_relative_to(workspace) and mode not in ("r", "rb")]
    assert (notebook.read_bytes(), notebook.stat().st_mtime_ns) == before


@pytest.mark.integration
def test_run_executes_a_copy_in_a_fresh_kernel(tmp_path):
    """--run reports this run's outputs, not the saved ones, and leaves the learner's folder as it was."""
    ws = tmp_path / "workspace"
    folder = ws / "01-prompt-injection"
    folder.mkdir(parents=True)
    scan = (
        "import json, pathlib\n"
        "p = pathlib.Path('scans/run/reports/scan.report.jsonl'); p.parent.mkdir(parents=True)\n"
        "p.write_text(json.dumps({'entry_type': 'eval', 'probe': 'a.B', 'detector': 'c.D', 'fails': 1,"
        " 'total_evaluated': 4}) + '\\n' + json.dumps({'entry_type': 'completion'}) + '\\n')"
    )
    stale = graded("test_fails_now", '"""Checks a wrong sum."""\nassert 1 + 1 == 3, "wrong sum"')
    stale.execution_count = 7  # saved as if it had passed
    nb = new_notebook(
        cells=[
            new_code_cell(scan),
            graded("test_passes", '"""Checks a right sum."""\nassert 1 + 1 == 2', points=2),
            stale,
            graded("test_hangs", "import time\ntime.sleep(60)"),
            graded("test_after_the_hang", "assert True"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "01-prompt-injection.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()

    lab = progress.lab_progress(ws, LABS["01"], run=True, timeout=5)

    assert lab.notes == progress.ordinary_notes(LABS["01"])
    assert [(t.grade_id, t.status) for t in lab.tests] == [
        ("test_passes", "passed"),
        ("test_fails_now", "failed"),
        ("test_hangs", "failed"),
        ("test_after_the_hang", "passed"),
    ]
    assert lab.tests[1].message == "AssertionError: wrong sum"
    assert lab.tests[2].message == "did not finish within 5 s"
    assert (lab.scan.report, lab.scan.hits, lab.scan.attempts) == ("scans/run/reports/scan.report.jsonl", 1, 4)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["01-prompt-injection.ipynb"]


def test_written_answers_are_named_as_graded_by_a_person(tmp_path):
    answer = new_markdown_cell("YOUR ANSWER HERE")
    answer.metadata["nbgrader"] = {"grade": True, "grade_id": "scan_reading", "locked": False, "points": 0.5,
                                   "schema_version": 3, "solution": True, "task": False}  # fmt: skip
    folder = tmp_path / "01-prompt-injection"
    folder.mkdir()
    nbformat.write(new_notebook(cells=[*saved_lab01().cells, answer]), folder / "01-prompt-injection.ipynb")
    result = progress.lab_progress(tmp_path, LABS["01"])
    assert result.points() == 4.5  # the tests' points only: no visible test can pass a written answer
    assert any(
        n.startswith("scan_reading (0.5 pts): a written answer (still empty), graded by a person") for n in result.notes
    )


def test_a_real_model_scans_parts_are_not_counted_beside_its_joined_report(tmp_path):
    """A real model's scan runs each probe in its own garak process (part1/, part2/ ...) and
    joins their reports into the scan's own reports/ folder: only the joined one is a scan."""
    scan = tmp_path / "scans" / "real"
    joined = write_report(scan / "reports/scan.report.jsonl", 3, 17, mtime=1_700_000_000)
    for n in (1, 2):
        write_report(scan / f"part{n}/reports/scan.report.jsonl", 1, 2, mtime=1_700_000_100)
    other = write_report(tmp_path / "scans" / "hardened/reports/scan.report.jsonl", 0, 17)
    webchat = write_report(tmp_path / "scans" / "web/scan.report.jsonl", 2, 9)
    write_report(tmp_path / "scans" / "web/chat/part1/reports/scan.report.jsonl", 1, 2)
    write_report(tmp_path / "scans" / "web/chat/reports/scan.report.jsonl", 1, 4)
    assert progress.scan_reports(tmp_path) == sorted([joined, other, webchat])
    assert progress.latest_scan(scan).attempts == 17
