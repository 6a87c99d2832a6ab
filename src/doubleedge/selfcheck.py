"""What a learner's own checks can tell before the grader runs, and what they cannot.

The grader re-runs each graded solution cell on its own, in a fresh process, after the
lab's setup cell (see grading/runner.py): a cell that reads a variable made by another,
ungraded cell (a scan result, a playground value) fails there although it ran in the
learner's kernel. :func:`names_from_other_cells` finds such names by reading the cells,
without running anything, so the visible tests and ``doubleedge progress`` catch it.

Some checks need what the learner's kernel must not hold (the grader's copy of the
learner's secret, held-out attacks). Their visible tests check the format only and say
so with :func:`grader_checks`; ``progress`` shows them as "format ok", never "passed",
and Validate lists them with that note instead of "Success!".
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

# nbformat is imported only where a notebook is written or must be upgraded: every lab's setup
# cell imports this module, so every graded kernel (and the grader's runner) would otherwise pay
# for nbformat's import, jsonschema's included (over a second where rfc3987_syntax is installed).

GRADER_ONLY = "format ok; the grader checks that"
# Cell metadata of a learner copy's test cell whose hidden tests were cut out (mark_hidden_tests).
HIDDEN_TESTS = "doubleedge_hidden_tests"
MORE_IN_GRADER = "visible checks ok; the grader checks more (hidden tests)"
WRITE_VALUES = "write values, not variables: the grader re-runs this cell on its own, after the setup cell"
UNFINISHED = "this cell is not finished: replace `raise NotImplementedError()` with your answer"


VALIDATE_WIDTH = 80  # nbgrader validate cuts longer lines ("...")

# Set in the grader's notebook kernel (grading/sandbox.py). That run only makes the learner's
# feedback copy; the scores come from the grader's own processes. So a cell that would repeat,
# for the feedback alone, slow work the grader does itself (Lab 07 retraining the learner's
# hardened model, about 50 CPU-seconds per learner) prints a note there instead (graded_kernel).
GRADED_KERNEL_ENV = "DOUBLEEDGE_GRADED_KERNEL"


def graded_kernel() -> bool:
    """True in the grader's notebook kernel, which runs the notebook for the feedback only."""
    return os.environ.get(GRADED_KERNEL_ENV) == "1"


def grader_checks(what: str) -> None:
    """Say, in a visible test's output, that the real check happens only in the grader.

    Under Validate (nbgrader sets NBGRADER_VALIDATING) the note goes to stderr: nbgrader
    counts a test cell that writes there as not passed, so Validate shows the note for
    this cell and never "Success!" on a notebook the grader may still fail.
    """
    note = f"{GRADER_ONLY} {what}"
    if os.environ.get("NBGRADER_VALIDATING"):
        print(textwrap.fill(f"{note} (only the grader can decide this cell)", VALIDATE_WIDTH), file=sys.stderr)
    else:
        print(note)


def bound_names(source: str) -> set[str] | None:
    """Every name ``source`` binds anywhere (None when it imports ``*``: anything may be bound)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def names_from_other_cells(source: str, available: Iterable[str]) -> list[str]:
    """Names ``source`` reads that neither it, ``available`` (the setup cell's and the other
    graded cells' names) nor Python's builtins define: in the grader, a NameError.

    Errs on the side of silence: a name bound anywhere in the cell counts as defined, so
    this never flags a cell that the grader runs without a NameError.
    """
    try:
        own = bound_names(source)
    except SyntaxError:
        return []  # the grader reports the syntax error itself
    if own is None:
        return []
    known = own | set(available) | set(dir(builtins))
    loaded = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return sorted(loaded - known)


def cell_problems(notebook: nbformat.NotebookNode | dict) -> dict[str, str]:
    """For each graded solution cell that reads another cell's variables: what to change."""
    setup, solutions = "", {}
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code":
            continue
        if meta.get("grade_id") == "setup":
            setup = cell.get("source", "")
        elif meta.get("solution") and meta.get("grade_id"):
            solutions.setdefault(str(meta["grade_id"]), cell.get("source", ""))
    available: set[str] = set()
    for source in [setup, *solutions.values()]:
        try:
            names = bound_names(source)
        except SyntaxError:
            continue
        if names is None:
            return {}
        available |= names
    problems = {}
    for grade_id, source in solutions.items():
        foreign = names_from_other_cells(source, available)
        if foreign:
            problems[grade_id] = (
                f"write values, not variables: cell '{grade_id}' uses {_quoted(foreign)} from another cell, "
                "and the grader re-runs it on its own, after the setup cell"
            )  # the fix first: nbgrader validate cuts long lines
    return problems


def _quoted(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def runs_alone(grade_id: str, folder: Path | str = ".") -> None:
    """A visible test's check that solution cell ``grade_id`` of the saved notebook here does
    not lean on another cell's variables (AssertionError with what to change).

    It reads the notebook as saved (Validate and ``progress`` read it that way too); with
    no notebook here holding that cell it says so and checks nothing.
    """
    for path in sorted(Path(folder).glob("*.ipynb"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            notebook = read_cells(path)
        except Exception:  # a broken neighbour file is not this check's business
            continue
        ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in notebook["cells"]}
        if grade_id in ids:
            problem = cell_problems(notebook).get(grade_id)
            assert problem is None, f"{problem} (checked in your saved notebook {path.name})"
            return
    print(f"note: could not check that cell '{grade_id}' runs on its own (no saved notebook with it here)")


def read_cells(path: Path) -> dict:
    """A saved notebook as plain data, for reading its cells. A version 4 notebook (what Jupyter
    saves) is read as JSON; an older one goes through nbformat, which upgrades it."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict) and data.get("nbformat") == 4 and isinstance(data.get("cells"), list):
        for cell in data["cells"]:  # nbformat joins multi-line sources on reading: so does this
            if isinstance(cell, dict) and isinstance(cell.get("source"), list):
                cell["source"] = "".join(cell["source"])
        return data
    import nbformat

    return nbformat.read(path, as_version=4)


def mark_hidden_tests(release: Path, source: Path) -> None:
    """Flag the learner copy's test cells that had hidden tests in the lab's source.

    The flag says only that a cell had some, never what they were; ``doubleedge progress``
    then reports such a cell's visible pass as "format ok", not as passed.
    """
    import nbformat

    hidden = {
        c.metadata["nbgrader"]["grade_id"]
        for c in nbformat.read(source, as_version=4).cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade") and "### BEGIN HIDDEN TESTS" in c.get("source", "")
    }
    notebook = nbformat.read(release, as_version=4)
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in hidden:
            cell.metadata[HIDDEN_TESTS] = True
    nbformat.write(notebook, release)
