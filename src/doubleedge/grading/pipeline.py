"""Grading submissions with nbgrader, then overwriting scores with the authoritative ones.

For each lab: build an nbgrader course folder from the repository's lab source,
generate the assignment (this fills the gradebook), then for every submission:
check it is a readable notebook of this lab, autograde it with nbgrader (the
learner's feedback and the gradebook's structure), re-run the learner's graded cells
in a fresh process (the scores), write those scores into nbgrader's gradebook, and
export one CSV row. One broken submission never stops the others.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from doubleedge.grading.labs import Lab
from doubleedge.models import ReferenceModel
from doubleedge.paths import graders_dir
from doubleedge.scan import scan_bot, scan_for_lab
from doubleedge.target import SupportBot, derive_secret

LEARNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
AUTOGRADE_TIMEOUT = 900
AUTHORITATIVE_TIMEOUT = 600


@dataclass(frozen=True)
class Submission:
    learner: str
    path: Path


@dataclass
class GradeRow:
    learner: str
    lab: str
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, float] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class GradingError(RuntimeError):
    pass


def find_submissions(folder: Path, lab: Lab) -> list[Submission]:
    """``folder/<learner>/**/<lab notebook>.ipynb`` (nbgrader's ``submitted/`` layout works too)."""
    found = []
    for learner_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        notebooks = sorted(learner_dir.rglob("*.ipynb"))
        named = [n for n in notebooks if n.stem == lab.slug]
        chosen = (named or notebooks or [None])[0]
        found.append(Submission(learner_dir.name, chosen if chosen else learner_dir / f"{lab.slug}.ipynb"))
    return found


class CourseFolder:
    """An nbgrader course folder for one lab, with its gradebook."""

    def __init__(self, root: Path, lab: Lab) -> None:
        self.root = Path(root)
        self.lab = lab

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(graders_dir() / "nbgrader_config.py", self.root / "nbgrader_config.py")
        source = self.root / "source" / self.lab.slug
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(self.lab.source_notebook.parent, source)
        self.nbgrader("generate_assignment", self.lab.slug, "--force")

    def nbgrader(self, *args: str, env: dict | None = None, timeout: float = 600) -> None:
        command = [str(Path(sys.executable).with_name("nbgrader")), *args]
        done = subprocess.run(
            command, cwd=self.root, env=tool_env(env), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise GradingError(f"nbgrader {args[0]} failed:\n{(done.stdout + done.stderr)[-2000:]}")

    def submitted_path(self, learner: str) -> Path:
        return self.root / "submitted" / learner / self.lab.slug / f"{self.lab.slug}.ipynb"

    def source_cells(self) -> dict[str, dict]:
        """Source notebook cells with nbgrader metadata, by grade_id."""
        nb = nbformat.read(self.root / "source" / self.lab.slug / f"{self.lab.slug}.ipynb", as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def grade(lab: Lab, submissions: list[Submission], course_root: Path | None = None) -> list[GradeRow]:
    """Grade every submission; returns one row per learner (failures carry notes, never raise)."""
    with tempfile.TemporaryDirectory(prefix="doubleedge-grade-") as tmp:
        course = CourseFolder(course_root or Path(tmp) / "course", lab)
        course.prepare()
        baseline = _baseline_report(lab, Path(tmp) / "baseline")
        return [grade_one(course, s, baseline, Path(tmp)) for s in submissions]


def grade_one(course: CourseFolder, submission: Submission, baseline: Path, scratch: Path) -> GradeRow:
    row = GradeRow(submission.learner, course.lab.number)
    try:
        if not LEARNER_ID.fullmatch(submission.learner):
            raise GradingError(f"learner id {submission.learner!r} is not allowed (letters, digits, _ . - only)")
        notebook = _read_submission(submission.path, course)
        row.notes += _modified_test_cells(notebook, course)
        target = course.submitted_path(submission.learner)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        course.nbgrader(
            "autograde",
            course.lab.slug,
            "--student",
            submission.learner,
            "--force",
            env={"DOUBLEEDGE_LEARNER": submission.learner},
            timeout=AUTOGRADE_TIMEOUT,
        )
        result = _authoritative(course, submission.learner, notebook, baseline, scratch)
        row.metrics = result["metrics"]
        row.notes += [f"{k}: {v['reason']}" for k, v in result["tests"].items() if not v["passed"]]
        _write_scores(course, row, {k: v["passed"] for k, v in result["tests"].items()})
    except (GradingError, subprocess.TimeoutExpired) as exc:
        row.notes.append(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        row.max_score = _max_score(course)
    return row


def _read_submission(path: Path, course: CourseFolder) -> nbformat.NotebookNode:
    if not path.is_file():
        raise GradingError(f"no notebook submitted ({path.name} missing)")
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 (json, nbformat and encoding errors alike)
        raise GradingError(f"not a valid notebook: {type(exc).__name__}: {str(exc)[:120]}") from None
    expected = set(course.source_cells())
    present = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in notebook.cells}
    if not expected & present:
        raise GradingError(f"this is not the Lab {course.lab.number} notebook (none of its graded cells are there)")
    return notebook


def _modified_test_cells(notebook: nbformat.NotebookNode, course: CourseFolder) -> list[str]:
    """Notes for test or read-only cells the learner changed (nbgrader restores them)."""
    source = {k: c for k, c in course.source_cells().items() if c.metadata["nbgrader"].get("locked")}
    notes = []
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        original = source.get(grade_id)
        if original is not None and _visible_part(original.source) != _visible_part(cell.source):
            notes.append(f"{grade_id}: test cell was modified; the original was restored for grading")
    return notes


def _visible_part(source: str) -> str:
    """What the learner's copy shows of a test cell (hidden tests removed), without trailing space."""
    visible = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)
    return visible.strip()


def _authoritative(course: CourseFolder, learner: str, notebook, baseline: Path, scratch: Path) -> dict:
    solution_ids = [k for k, c in course.source_cells().items() if c.metadata["nbgrader"].get("solution")]
    submitted = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c.source for c in notebook.cells}
    cells = {
        "setup": course.source_cells()["setup"].source,
        "cells": {k: submitted.get(k, "") for k in solution_ids},
    }
    work = Path(tempfile.mkdtemp(prefix=f"auth-{learner}-", dir=scratch))
    (work / "cells.json").write_text(json.dumps(cells), "utf-8")
    command = [
        sys.executable,
        "-m",
        "doubleedge.grading.authoritative",
        "--lab",
        course.lab.number,
        "--learner",
        learner,
        "--cells",
        "cells.json",
        "--baseline",
        str(baseline),
        "--heldout",
        str(course.lab.heldout_attacks),
        "--out",
        "result.json",
    ]
    done = subprocess.run(
        command,
        cwd=work,
        env=tool_env({"DOUBLEEDGE_LEARNER": learner}),
        capture_output=True,
        text=True,
        timeout=AUTHORITATIVE_TIMEOUT,
        check=False,
    )
    result = work / "result.json"
    if done.returncode != 0 or not result.is_file():
        raise GradingError(f"the grading process failed (exit {done.returncode}): {done.stderr[-300:]}")
    return json.loads(result.read_text("utf-8"))


def _write_scores(course: CourseFolder, row: GradeRow, passed: dict[str, bool]) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(course.gradebook_url) as gradebook:
        for test_id, ok in passed.items():
            grade = gradebook.find_grade(test_id, course.lab.slug, course.lab.slug, row.learner)
            grade.auto_score = grade.max_score if ok else 0.0
            row.tests[test_id] = grade.auto_score
        gradebook.db.commit()
        submission = gradebook.find_submission(course.lab.slug, row.learner)
        row.score, row.max_score = submission.score, submission.max_score


def _max_score(course: CourseFolder) -> float:
    return float(sum(c.metadata["nbgrader"].get("points", 0) for c in course.source_cells().values()))


def _baseline_report(lab: Lab, workdir: Path) -> Path:
    """The unhardened bot's scan, once per grading run (the same for every learner)."""
    bot = SupportBot(ReferenceModel(), secret=derive_secret("baseline"))
    return scan_bot(bot, scan_for_lab(lab.number), workdir=workdir).report_path


def tool_env(extra: dict | None) -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader calls alembic and jupyter by name: the venv's bin must come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def write_csv(rows: list[GradeRow], path: Path) -> None:
    tests = sorted({t for r in rows for t in r.tests})
    metrics = sorted({m for r in rows for m in r.metrics})
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "lab", "score", "max_score", *tests, *metrics, "notes"])
        for r in rows:
            writer.writerow(
                [
                    r.learner,
                    r.lab,
                    r.score,
                    r.max_score,
                    *(r.tests.get(t, 0.0) for t in tests),
                    *(r.metrics.get(m, "") for m in metrics),
                    " | ".join(r.notes),
                ]
            )
