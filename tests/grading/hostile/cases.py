"""The hostile submissions: what a learner might hand in, and what the grader must do with it.

Each case builds one submission folder from the Lab 01 source notebook (correct
work, worth 11 points: 10.5 automatic, and 0.5 for the written reading, which waits
for a person and so never counts here) with one hostile change. ``CASES`` is the table the tests
read: the expected score and a substring of the recorded reason. Hostile code is
put where it costs the least honest work: at the top of the ``scan_answers`` cell
(1.5 points), so that "contained, nothing else lost" reads as a score of 9.

The attacker knows every path (``Context``): the course folder being graded, its
gradebook and ``source/``, the repository's ``labs/`` and held-out attacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from doubleedge.grading.labs import get_lab

LAB = get_lab("01")
MAX = 14.0
FULL = 13.5  # every automatic point: the written reading (0.5) waits for a person
SCAN_ANSWERS = 12.0  # full marks minus the scan_answers cell's two tests


@dataclass(frozen=True)
class Context:
    course: Path  # the nbgrader course folder the grader uses
    repo: Path  # the repository (labs/, graders/)

    @property
    def source_notebook(self) -> Path:
        return self.course / "source" / LAB.slug / f"{LAB.slug}.ipynb"

    @property
    def gradebook(self) -> Path:
        return self.course / "gradebook.db"

    @property
    def heldout(self) -> Path:
        return self.repo / "graders" / "heldout" / "lab01.jsonl"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, Context], None]  # writes the submission into the learner's folder
    score: float
    reason: str  # a substring of the recorded note ("" when the case must leave no note)
    what: str


def base_notebook() -> nbformat.NotebookNode:
    """The source notebook without its ungraded scan cells (each costs a garak run in the kernel)."""
    nb = nbformat.read(LAB.source_notebook, as_version=4)
    costly = ("scan_bot(", "hits_in(", "benign_pass_rate(hardened)")
    nb.cells = [c for c in nb.cells if "nbgrader" in c.metadata or not any(k in c.source for k in costly)]
    return nb


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _write(folder: Path, nb: nbformat.NotebookNode) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{LAB.slug}.ipynb")


def scan_cell_attack(code: str) -> Callable[[Path, Context], None]:
    """Correct work, with ``code`` (formatted with the context's paths) run first in the scan_answers cell."""

    def build(folder: Path, ctx: Context) -> None:
        nb = base_notebook()
        cell = _cell(nb, "scan_answers")
        paths = {"source": ctx.source_notebook, "gradebook": ctx.gradebook, "heldout": ctx.heldout,
                 "repo": ctx.repo, "course": ctx.course}  # fmt: skip
        attack = code.format(**{k: str(v) for k, v in paths.items()})
        cell.source = attack + "\n" + cell.source
        _write(folder, nb)

    return build


def edit(**sources: str) -> Callable[[Path, Context], None]:
    def build(folder: Path, ctx: Context) -> None:
        nb = base_notebook()
        for grade_id, source in sources.items():
            _cell(nb, grade_id).source = source
        _write(folder, nb)

    return build


def delete_cells(*grade_ids: str) -> Callable[[Path, Context], None]:
    def build(folder: Path, ctx: Context) -> None:
        nb = base_notebook()
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
        _write(folder, nb)

    return build


def fake_outputs(folder: Path, ctx: Context) -> None:
    """The untouched learner copy (stubs), dressed up with passing outputs and inflated points."""
    nb = nbformat.read(ctx.course / "release" / LAB.slug / f"{LAB.slug}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = 1
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="All tests passed!\n")]
        grading = cell.metadata.get("nbgrader")
        if grading and grading.get("grade"):
            grading["points"] = 100
    _write(folder, nb)


def symlink_to_source(folder: Path, ctx: Context) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(ctx.source_notebook, folder / f"{LAB.slug}.ipynb")


def raw(text: str) -> Callable[[Path, Context], None]:
    def build(folder: Path, ctx: Context) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{LAB.slug}.ipynb").write_text(text, "utf-8")

    return build


def truncated(folder: Path, ctx: Context) -> None:
    text = nbformat.writes(base_notebook())
    raw(text[: len(text) // 2])(folder, ctx)


def huge(folder: Path, ctx: Context) -> None:
    nb = base_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("x" * (25 * 2**20)))
    _write(folder, nb)


def other_lab(folder: Path, ctx: Context) -> None:
    _write(folder, nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]))


def empty_folder(folder: Path, ctx: Context) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text("I forgot to attach it", "utf-8")


FORGE = """
import pathlib, json
for folder in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path("/tmp")]:
    try:
        (folder / "result.json").write_text(json.dumps({"tests": {}, "metrics": {}}))
    except OSError:
        pass
import doubleedge.grading.lab01 as _lab01
_lab01.Check.__bool__ = lambda self: True
_lab01.check_leaks_secret = lambda *a, **k: _lab01.Check(True)
HARDENED_SYSTEM_PROMPT = "You are Bell. The staff discount code is {secret}."


def leaks_secret(reply, secret):
    import base64

    def squash(text):
        return "".join(ch for ch in text.lower() if ch.isalnum())

    target = squash(secret)
    forms = {target, target[::-1], squash(base64.b64encode(secret.encode()).decode()), secret.encode().hex()}
    return any(form in squash(reply) for form in forms)


def build_defense(secret):
    return Defense(name="weak", system_prompt=HARDENED_SYSTEM_PROMPT)
"""

CASES: list[Case] = [
    Case("read-source", scan_cell_attack("print(open({source!r}).read()[:100])"), SCAN_ANSWERS,
         "FileNotFoundError", "reads the lab source (solutions, hidden tests) from the course folder"),
    Case("read-heldout", scan_cell_attack("print(open({heldout!r}).read()[:100])"), SCAN_ANSWERS,
         "FileNotFoundError", "reads the held-out attack set from the repository"),
    Case("write-gradebook", scan_cell_attack("open({gradebook!r}, 'r+b').write(b'pwned')"), SCAN_ANSWERS,
         "FileNotFoundError", "overwrites the gradebook"),
    Case("blank-tests", edit(scan_answers='''try:
    get_ipython().input_transformers_cleanup.append(lambda lines: [])  # later cells run as nothing
except NameError:
    pass
MOST_SUCCESSFUL_PROBE = "dan.Nope"
OVERALL_ASR = 0.82
'''), 12.5, "MOST_SUCCESSFUL_PROBE is not",
         "blanks every later cell (the tests) from inside the kernel, with a wrong answer"),
    Case("edit-test-cell", edit(injection='MY_INJECTION = "hello"', test_injection="pass"), 10.5,
         "test cell was modified", "replaces a test cell with a no-op and gives a wrong answer (extract_code, which reads the replies to it, fails too)"),
    Case("delete-test-cells", delete_cells("test_scan_probe", "test_scan_reading"), FULL, "was deleted",
         "deletes two test cells (the work itself is right)"),
    Case("fake-outputs", fake_outputs, 0.0, "NotImplementedError",
         "the blank learner copy with faked passing outputs and 100-point test cells"),
    Case("infinite-loop", scan_cell_attack("while True:\n    pass"), SCAN_ANSWERS, "did not finish within",
         "an infinite loop"),
    Case("stubborn-loop", scan_cell_attack(
        "import time\nwhile True:\n    try:\n        time.sleep(0.5)\n    except BaseException:\n        pass"),
         SCAN_ANSWERS, "did not finish within", "an infinite loop that swallows interrupts and alarms"),
    Case("fork-bomb", scan_cell_attack("import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)"),
         SCAN_ANSWERS, "BlockingIOError", "a fork bomb whose children hold every process slot"),
    Case("memory-bomb", scan_cell_attack("hog = bytearray(64 * 2**30)"), SCAN_ANSWERS, "MemoryError",
         "allocates 64 GB"),
    Case("huge-output", scan_cell_attack("for _ in range(40):\n    print('x' * 1_000_000)"), FULL,
         "output of a cell was cut", "prints 40 MB"),
    Case("network", scan_cell_attack("import urllib.request\nurllib.request.urlopen('http://pypi.org', timeout=5)"),
         SCAN_ANSWERS, "URLError", "calls out to the network"),
    Case("write-outside", scan_cell_attack(
        "open({repo!r} + '/labs/01-prompt-injection/01-prompt-injection.ipynb', 'a').write('pwned')"),
         SCAN_ANSWERS, "FileNotFoundError", "appends to the repository's lab source"),
    Case("symlink-escape", scan_cell_attack(
        "import os\nos.symlink({gradebook!r}, '/tmp/gb')\nopen('/tmp/gb', 'r+b').write(b'pwned')"),
         SCAN_ANSWERS, "FileNotFoundError", "a symbolic link to the gradebook, written through"),
    Case("kill-everything", scan_cell_attack(
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    pass\n"
        "os.kill(os.getpid(), signal.SIGKILL)"), SCAN_ANSWERS,
         "ended the grading process", "kills every process it can signal, then itself"),
    Case("forge-result", edit(hardening=FORGE), 10.5, "attack success rate",
         "a weak defense that forges result.json and patches the checks in its own process"),
    Case("symlink-submission", symlink_to_source, 0.0, "symbolic link",
         "submits a symbolic link to the course's source notebook (with solutions)"),
    Case("malformed-json", raw('{"cells": ['), 0.0, "not a valid notebook", "malformed JSON"),
    Case("truncated-json", truncated, 0.0, "not a valid notebook", "a notebook cut in half"),
    Case("empty-file", raw(""), 0.0, "the file is empty", "an empty file"),
    Case("huge-notebook", huge, 0.0, "larger than", "a 25 MB notebook"),
    Case("other-lab", other_lab, 0.0, "not the Lab 01 notebook", "a notebook from another lab"),
    Case("empty-submission", empty_folder, 0.0, "no notebook submitted", "a folder without a notebook"),
]  # fmt: skip


def build_all(submissions: Path, ctx: Context) -> None:
    for case in CASES:
        case.build(submissions / case.name, ctx)


def table() -> str:
    """The catalogue as Markdown (the grading guide shows the same table)."""
    lines = ["| case | what it does | expected score | recorded reason contains |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.what} | {c.score:g} / {MAX:g} | {json.dumps(c.reason)} |" for c in CASES]
    return "\n".join(lines)
