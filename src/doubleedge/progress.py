"""``doubleedge progress``: a learner's own view of where they stand in every lab.

It reads only the learner's copies in the workspace (``workspace/<slug>/<slug>.ipynb``,
made by ``doubleedge start``) and the garak reports that their scans left next to them.
Those copies are nbgrader's release versions: the hidden tests were cut out before the
learner got them, so nothing this command reads can reveal a hidden test. It never opens
the lab sources (``labs/``) or the graders' folder (``graders/``), and it never writes
to the learner's notebook: ``--run`` executes a temporary copy in a fresh kernel.

What it reports is a preview. The grade comes from the grader's own run (hidden tests,
held-out attacks, a fresh sandboxed process): see the learner page "How grading works".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from doubleedge.labs import LABS, Lab
from doubleedge.scan.report import ScanError, read_report
from doubleedge.selfcheck import GRADER_ONLY, HIDDEN_TESTS, MORE_IN_GRADER, cell_problems

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
# A visible test that could only check the format: the grader decides the rest (selfcheck.py).
FORMAT_OK = "format ok"
REPORT_GLOB = "*.report.jsonl"  # garak's report; the labs' scans keep it under their workdir
DEFAULT_TIMEOUT = 600  # seconds per cell with --run: a lab's garak scan or training run fits
MAX_MESSAGE = 160  # characters of an error message shown per failed test


class WorkspaceMissing(Exception):
    """The workspace folder does not exist: the learner has no lab copies yet."""


@dataclass(frozen=True)
class TestCell:
    """One graded test cell of the learner copy: its nbgrader id, points and state."""

    grade_id: str
    points: float
    status: str
    checks: str = ""  # the first line of the cell's docstring: what it checks
    message: str = ""  # for a failed test, the error it raised


@dataclass(frozen=True)
class ScanSummary:
    """The newest garak report of a lab, as the learner's own scan left it."""

    report: str  # relative to the lab's folder
    modified: str
    attempts: int = 0
    hits: int = 0
    attack_success_rate: float | None = None
    error: str = ""


@dataclass
class LabProgress:
    lab: str
    slug: str
    notebook: str
    found: bool
    tests: list[TestCell] = field(default_factory=list)
    scan: ScanSummary | None = None
    notes: list[str] = field(default_factory=list)

    def points(self, status: str | None = None) -> float:
        return sum(t.points for t in self.tests if status is None or t.status == status)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["points"] = {"passed": self.points(PASSED), "format_ok": self.points(FORMAT_OK),
                          "failed": self.points(FAILED), "total": self.points()}  # fmt: skip
        return data


# --- reading a notebook ---------------------------------------------------------------


def graded_tests(notebook: nbformat.NotebookNode, timeout: float | None = None) -> list[TestCell]:
    """The notebook's autograded test cells, in order, each with the state its outputs show.

    ``timeout`` is set when the outputs come from ``--run``: a cell that was interrupted
    then did not finish in time, which says more than "KeyboardInterrupt".
    """
    tests, problems, solution = [], cell_problems(notebook), None
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and meta.get("solution"):
            solution = meta.get("grade_id")  # the exercise cell that the next tests check
        if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        status, message = cell_status(cell, timeout)
        if status == PASSED and cell.get("metadata", {}).get(HIDDEN_TESTS):
            status, message = FORMAT_OK, MORE_IN_GRADER
        if status != FAILED and solution in problems:  # it ran here, but not in the grader
            status, message = FAILED, problems[solution]
        tests.append(
            TestCell(
                grade_id=str(meta.get("grade_id", "?")),
                points=float(meta.get("points") or 0),
                status=status,
                checks=_docstring_line(cell.get("source", "")),
                message=message,
            )
        )
    return tests


def cell_status(cell: nbformat.NotebookNode, timeout: float | None = None) -> tuple[str, str]:
    """passed, failed, format ok or not run, from the saved outputs (never by running anything).

    An error output means the test failed. A test cell that passes usually prints nothing,
    so an execution count with no error counts as passed; no count and no output, not run.
    A test that says the grader checks the rest (selfcheck.grader_checks) is "format ok".
    """
    outputs = cell.get("outputs", [])
    said = "".join(str(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    for output in outputs:
        if output.get("output_type") == "error":
            name, value = output.get("ename", "Error"), str(output.get("evalue", "")).strip()
            if timeout is not None and name == "KeyboardInterrupt":
                return FAILED, f"did not finish within {timeout:g} s"
            first = value.splitlines()[0] if value else ""
            return FAILED, _shorten(f"{name}: {first}" if first else name)
    if GRADER_ONLY in said:
        return FORMAT_OK, _shorten(said[said.index(GRADER_ONLY) :].splitlines()[0])
    if cell.get("execution_count") is not None or outputs:
        return PASSED, ""
    return NOT_RUN, ""


def _docstring_line(source: str) -> str:
    text = source.lstrip()
    if not text.startswith(('"""', "'''")):
        return ""
    body = text[3:].split(text[:3], 1)[0].strip()
    return _shorten(body.splitlines()[0]) if body else ""


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


# --- reading the scans ----------------------------------------------------------------


def scan_reports(folder: Path) -> list[Path]:
    """Every whole garak report under ``folder``.

    Lab 04 runs garak once per endpoint, and a real model's scan once per probe; each joins
    the parts into one report (in the scan's folder, or in its ``reports`` folder). A part lies
    below a folder that holds another report of its own, and is skipped.
    """
    found = sorted(p for p in folder.rglob(REPORT_GLOB) if p.is_file())
    held: dict[Path, Path] = {}  # folder -> the report it holds
    for report in found:
        held[report.parent] = report
        if report.parent.name == "reports":  # garak's own layout: the run's folder holds it too
            held.setdefault(report.parent.parent, report)
    return [p for p in found if all(held.get(parent, p) == p for parent in list(p.parents)[1:])]


def latest_scan(folder: Path) -> ScanSummary | None:
    """The newest report's overall attack success rate, or why it cannot be read."""
    reports = scan_reports(folder)
    if not reports:
        return None
    newest = max(reports, key=lambda p: p.stat().st_mtime_ns)
    where = newest.relative_to(folder).as_posix()
    modified = datetime.fromtimestamp(newest.stat().st_mtime).isoformat(timespec="seconds")
    try:
        report = read_report(newest)
    except ScanError as exc:  # an interrupted scan leaves a report without a completion record
        return ScanSummary(where, modified, error=str(exc).replace(str(folder) + os.sep, ""))
    return ScanSummary(where, modified, report.attempts, report.hits, round(report.overall_attack_success_rate, 4))


# --- running a copy -------------------------------------------------------------------


@contextlib.contextmanager
def executed_copy(notebook: nbformat.NotebookNode, name: str, timeout: float) -> Iterator[tuple[Path, str]]:
    """Run ``notebook`` in a fresh kernel in a temporary folder; yield the folder and a note.

    The learner's file is never written: the copy's outputs and its scans live in the
    temporary folder, which is removed afterwards. Errors do not stop the run (the
    grader also runs every cell), and a cell that outlives ``timeout`` is interrupted.
    """
    from nbclient import NotebookClient

    folder = Path(tempfile.mkdtemp(prefix="doubleedge-progress-"))
    note = ""
    for cell in notebook.cells:  # saved outputs must not pass for this run's
        if cell.get("cell_type") == "code":
            cell.outputs, cell.execution_count = [], None
    try:
        nbformat.write(notebook, folder / name)
        client = NotebookClient(
            notebook,
            timeout=timeout,
            allow_errors=True,
            interrupt_on_timeout=True,
            resources={"metadata": {"path": str(folder)}},
        )
        try:
            client.execute(env=_kernel_env())
        except Exception as exc:  # a dead kernel or a missing kernel: report what ran so far
            note = f"the run stopped early ({type(exc).__name__}: {_shorten(str(exc).strip())})"
        yield folder, note
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _kernel_env() -> dict[str, str]:
    """This environment, with the virtual environment's programs first (garak, jupyter)."""
    from doubleedge.realmodel import ENV, OFF

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[ENV] = OFF  # the real-model part is ungraded and takes minutes: progress shows the graded cells
    return env


# --- one lab, every lab ---------------------------------------------------------------


def lab_progress(workspace: Path, lab: Lab, *, run: bool = False, timeout: float = DEFAULT_TIMEOUT) -> LabProgress:
    """What the learner's copy of ``lab`` shows: its test cells and its newest scan."""
    folder = workspace / lab.slug
    path = folder / f"{lab.slug}.ipynb"
    result = LabProgress(lab.number, lab.slug, str(path), found=path.is_file())
    if not result.found:
        return result
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as exc:  # not JSON, cut short, not a notebook: say so, go on with the other labs
        result.notes.append(f"could not read the notebook ({type(exc).__name__}: {_shorten(str(exc).strip())})")
        return result
    if run:
        with executed_copy(notebook, path.name, timeout) as (copy_folder, note):
            result.notes.extend([note] if note else [])
            result.tests = graded_tests(notebook, timeout)
            result.scan = latest_scan(copy_folder)
    else:
        result.tests = graded_tests(notebook)
        result.scan = latest_scan(folder)
    if not result.tests:
        result.notes.append(f"no graded test cells found: is this the Lab {lab.number} notebook?")
    result.notes += written_answer_notes(notebook) + ordinary_notes(lab)
    return result


def ordinary_notes(lab: Lab) -> list[str]:
    """The held-out ordinary rule of a lab whose proof has an ordinary half: no visible test shows it."""
    if lab.ordinary_allowed is None:
        return []
    return [
        "ordinary use is graded on held-out requests: a hardened reply keeps one only if it is the unhardened "
        f"bot's reply (apart from spacing) or differs only as this lab allows: {lab.ordinary_allowed} "
        "(learners/grading/ on the course site)"
    ]


def written_answer_notes(notebook: nbformat.NotebookNode) -> list[str]:
    """The written answers (nbgrader's manually graded answers): no test can show them, a person grades them."""
    notes = []
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and meta.get("solution"):
            stubs = ("", "YOUR ANSWER HERE", "# YOUR CODE HERE\nraise NotImplementedError()")
            empty = " (still empty)" if cell.get("source", "").strip() in stubs else ""
            notes.append(f"{meta.get('grade_id')} ({_points(float(meta.get('points') or 0))}): a written answer{empty}, "
                         "graded by a person; rubric and model answers: learners/written-answers/ on the course site")  # fmt: skip
    return notes


def progress(
    workspace: Path, *, run: bool = False, timeout: float = DEFAULT_TIMEOUT, echo: Callable[[str], None] | None = None
) -> list[LabProgress]:
    """Every registered lab, in order. ``echo`` is told which lab runs (``--run`` is slow)."""
    if not workspace.is_dir():
        raise WorkspaceMissing(
            f"no workspace at {workspace}: `make start` (or `doubleedge start`) makes your lab copies there, "
            "or pass --workspace DIR"
        )
    results = []
    for lab in LABS.values():
        if run and echo and (workspace / lab.slug / f"{lab.slug}.ipynb").is_file():
            echo(f"running a copy of {lab.slug} in a fresh kernel ...")
        results.append(lab_progress(workspace, lab, run=run, timeout=timeout))
    return results


# --- output ---------------------------------------------------------------------------


def table(results: list[LabProgress], workspace: Path, run: bool) -> str:
    """The human report: one block per lab."""
    source = "a fresh run of a copy of each notebook" if run else "your saved notebooks (run cells and save to update)"
    lines = [f"Progress in {workspace}, from {source}.", ""]
    for r in results:
        lines.extend(_lab_lines(r))
        lines.append("")
    lines.append(
        "Visible tests only. Your grade comes from a fresh run with hidden tests and held-out attacks:\n"
        "grade yourself with `.venv/bin/doubleedge grade --lab NN --notebook workspace/<lab>/<lab>.ipynb`."
    )
    return "\n".join(lines)


def _lab_lines(r: LabProgress) -> list[str]:
    if not r.found:
        return [f"Lab {r.lab}  {r.slug}: not found ({r.notebook})"]
    head = f"Lab {r.lab}  {r.slug}"
    if r.tests:
        head += f": {r.points(PASSED):g} of {r.points():g} points in visible tests passed"
        if r.points(FORMAT_OK):
            head += f", {r.points(FORMAT_OK):g} more in the right format (the grader checks them)"
    lines = [head]
    width = max((len(t.grade_id) for t in r.tests), default=0)
    for t in r.tests:
        detail = t.message if t.status in (FAILED, FORMAT_OK) else t.checks
        lines.append(f"  {t.status:9} {t.grade_id:{width}}  {_points(t.points):6}  {detail}".rstrip())
    lines.append(f"  last scan: {_scan_text(r.scan)}")
    lines.extend(f"  note: {n}" for n in r.notes)
    return lines


def _points(points: float) -> str:
    return f"{points:g} pt" + ("" if points == 1 else "s")


def _scan_text(scan: ScanSummary | None) -> str:
    if scan is None:
        return "none yet"
    if scan.error:
        return f"{scan.report} ({scan.modified}) cannot be read: {scan.error}"
    return (
        f"attack success rate {scan.attack_success_rate:.1%} ({scan.hits} hits in {scan.attempts} attempts), "
        f"{scan.report} ({scan.modified})"
    )


def as_json(results: list[LabProgress], workspace: Path, run: bool) -> dict:
    return {
        "workspace": str(workspace),
        "source": "run" if run else "saved",
        "labs": [r.as_dict() for r in results],
    }


# --- the subcommand -------------------------------------------------------------------


def cmd_progress(args: argparse.Namespace) -> int:
    workspace = Path(args.workspace)
    echo = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        results = progress(workspace, run=args.execute, timeout=args.timeout, echo=echo)
    except WorkspaceMissing as exc:
        print(f"doubleedge: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(results, workspace, args.execute), indent=1))
    else:
        print(table(results, workspace, args.execute))
    return 0


def add_progress_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("progress", help="your progress in every lab, from your own lab copies (no hidden tests)")
    p.add_argument("--workspace", default="workspace", help="where your lab copies live (default: workspace)")
    # dest is not "run": the CLI keeps each subcommand's handler in args.run.
    p.add_argument("--run", dest="execute", action="store_true", help="run a copy of each notebook in a fresh kernel")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell with --run (default: 600)")
    p.add_argument("--json", action="store_true", help="print machine-readable results")
    p.set_defaults(run=cmd_progress)
