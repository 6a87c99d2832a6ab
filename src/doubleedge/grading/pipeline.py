"""Grading submissions with nbgrader, in a sandbox, in parallel, with authoritative scores.

For each lab: build an nbgrader course folder from the repository's lab source and
generate the assignment (this fills the gradebook), scan the unhardened bot once
(the baseline every learner's scan answers are checked against), then grade every
submission:

1. check it is a readable notebook of this lab (never a symbolic link, never huge);
2. ``nbgrader autograde`` it with a kernel in the sandbox (see sandbox.py): the
   learner's feedback and the gradebook's structure. Hidden tests never reach the
   kernel, outputs are capped, cells and the whole notebook have time limits;
3. re-run the learner's solution cells in fresh sandboxed processes (see
   authoritative.py): the scores;
4. write those scores into nbgrader's gradebook and export one CSV row.

**Parallel.** nbgrader autogrades one notebook at a time against one SQLite gradebook.
Each of ``workers`` threads owns a copy of the course folder (its own gradebook), so
nbgrader processes never share a database; the heavy work happens in subprocesses.
Each copy keeps one nbgrader process for all its submissions (autograder.py): nbgrader
is imported once per worker, and every notebook still gets a fresh sandboxed kernel.
Only the main thread writes the course's gradebook, one submission at a time, with
nbgrader's own API. The rows are in input order and do not depend on ``workers``.

One broken or hostile submission never stops the others; it gets a clear note.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import nbformat

from doubleedge import selfcheck
from doubleedge.grading import authoritative, nbextras, sandbox
from doubleedge.grading.autograder import Autograder
from doubleedge.grading.judges import judge_for
from doubleedge.labs import Lab
from doubleedge.paths import cache_dir, graders_dir
from doubleedge.target.secrets import course_key

LEARNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_NOTEBOOK_BYTES = 20 * 2**20
GRADING_DIR = ".grading"  # inside the course folder: worker copies, scratch, the baseline scan


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
    # Written answers a person grades in formgrader, by grade_id: their score, or None until graded.
    manual: dict[str, float | None] = field(default_factory=dict)
    manual_pending: float = 0.0  # points that still wait for a person (in max_score, not yet in score)
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attacks: dict = field(default_factory=dict)  # which attacks beat the hardened bot (summary, not CSV)


@dataclass
class Outcome:
    """What a worker found for one submission, for the main thread to write."""

    submission: Submission
    notes: list[str] = field(default_factory=list)
    accepted: bool = False  # a notebook of this lab: it goes into the gradebook
    passed: dict[str, bool] = field(default_factory=dict)  # authoritative, by test grade_id
    reasons: dict[str, str] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    attacks: dict = field(default_factory=dict)
    autograded: Path | None = None  # the worker's autograded/<learner>/<lab> folder
    nbgrader_scores: dict[str, float] = field(default_factory=dict)
    timestamp: object = None
    late_penalty: float | None = None


class GradingError(RuntimeError):
    pass


def find_submissions(folder: Path, lab: Lab) -> list[Submission]:
    """``folder/<learner>/**/<lab notebook>.ipynb`` (nbgrader's ``submitted/`` layout works too).

    Symbolic links are never followed: a link is reported as the submission itself.
    """
    found = []
    for learner_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir() or p.is_symlink()):
        notebooks = [] if learner_dir.is_symlink() else sorted(_notebooks(learner_dir))
        named = [n for n in notebooks if n.stem == lab.slug]
        chosen = (named or notebooks or [None])[0]
        found.append(Submission(learner_dir.name, chosen if chosen else learner_dir / f"{lab.slug}.ipynb"))
    return found


def _notebooks(folder: Path) -> list[Path]:
    result = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .ipynb_checkpoints and the like
        result += [Path(root) / f for f in files if f.endswith(".ipynb")]
    return result


class CourseFolder:
    """An nbgrader course folder for one lab, with its gradebook."""

    def __init__(self, root: Path, lab: Lab) -> None:
        self.root = Path(root).resolve()
        self.lab = lab
        self._autograder: Autograder | None = None

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def jupyter_dir(self) -> Path:
        return self.root / GRADING_DIR / "jupyter"

    def prepare(self) -> None:
        """Config (the project's plus the sandbox's), kernelspec, lab source, generated assignment."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = (graders_dir() / "nbgrader_config.py").read_text("utf-8") + sandbox.nbgrader_config_block()
        (self.root / "nbgrader_config.py").write_text(config, "utf-8")
        sandbox.install_kernelspec(self.jupyter_dir)
        source = self.root / "source" / self.lab.slug
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(self.lab.source_notebook.parent, source)
        if (self.root / "gradebook.db").exists():  # a course folder in use: its gradebook keeps its grades
            self._generate_assignment()
            return
        with _generated_once(self.lab, config) as kept:
            if (kept / "gradebook.db").is_file():
                shutil.copy(kept / "gradebook.db", self.root / "gradebook.db")
                shutil.rmtree(self.root / "release", ignore_errors=True)
                shutil.copytree(kept / "release", self.root / "release")
            else:
                self._generate_assignment()
                _keep_generated(self.root, kept)

    def _generate_assignment(self) -> None:
        """``nbgrader generate_assignment``: the learner copy, and the lab in the gradebook."""
        self.nbgrader("generate_assignment", self.lab.slug, "--force")
        release = self.root / "release" / self.lab.slug / f"{self.lab.slug}.ipynb"
        selfcheck.mark_hidden_tests(release, self.root / "source" / self.lab.slug / f"{self.lab.slug}.ipynb")

    def nbgrader(self, *args: str, env: dict | None = None, timeout: float = 600) -> None:
        done = run_nbgrader(self.root, args, env, timeout)
        if done.timed_out:
            raise GradingError(f"nbgrader {args[0]} did not finish within {timeout:g} s")
        if done.returncode != 0:
            raise GradingError(f"nbgrader {args[0]} failed:\n{(done.stdout + done.stderr)[-2000:]}")

    def autograde(self, learner: str, env: dict, timeout: float) -> sandbox.Run:
        """``nbgrader autograde`` of one learner, in this folder's long-lived nbgrader process."""
        if self._autograder is None:
            self._autograder = Autograder(self.root, nbgrader_env(None))
        return self._autograder.run(("autograde", self.lab.slug, "--student", learner, "--force"), env, timeout)

    def close(self) -> None:
        """End this folder's nbgrader process, if it has one."""
        if self._autograder is not None:
            self._autograder.close()

    def submitted_path(self, learner: str) -> Path:
        return self.root / "submitted" / learner / self.lab.slug / f"{self.lab.slug}.ipynb"

    def autograded_dir(self, learner: str) -> Path:
        return self.root / "autograded" / learner / self.lab.slug

    def source_cells(self) -> dict[str, dict]:
        """Source notebook cells with nbgrader metadata, by grade_id."""
        if not hasattr(self, "_source_cells"):
            nb = nbformat.read(self.root / "source" / self.lab.slug / f"{self.lab.slug}.ipynb", as_version=4)
            self._source_cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
        return self._source_cells

    def worker_copy(self, index: int) -> CourseFolder:
        """A private copy for one worker: config, source, release, kernelspec and a fresh gradebook copy."""
        root = self.root / GRADING_DIR / "workers" / f"w{index}"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        for name in ("nbgrader_config.py", "gradebook.db"):
            shutil.copy(self.root / name, root / name)
        for name in ("source", "release"):
            if (self.root / name).exists():
                shutil.copytree(self.root / name, root / name)
        shutil.copytree(self.jupyter_dir, root / GRADING_DIR / "jupyter")
        own_root(root)
        copy = CourseFolder(root, self.lab)
        copy._source_cells = self.source_cells()
        return copy


# A generated assignment depends only on the lab's source folder, the nbgrader config, the code
# that generates it and the versions below: it is generated once per machine (two nbgrader
# processes, 6 to 12 s of CPU) and copied into every course folder after that (each class, each
# self-study --notebook grade).
GENERATED_FORMAT = "doubleedge-generated-1"


@contextlib.contextmanager
def _generated_once(lab: Lab, config: str) -> Iterator[Path]:
    """The kit cache's folder for this lab's generated assignment, held under a lock (parallel
    graders and test workers wait for the first one); it may be empty, or not writable."""
    import doubleedge

    digest = hashlib.sha256()
    for part in (GENERATED_FORMAT, doubleedge.__version__, version("nbgrader"), config):
        digest.update(part.encode() + b"\0")
    for code in (__file__, selfcheck.__file__):  # how the assignment is generated and marked
        digest.update(Path(code).read_bytes())
    folder = lab.source_notebook.parent
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    kept = cache_dir() / "generated" / f"{lab.slug}-{digest.hexdigest()[:16]}"
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        lock = open(f"{kept}.lock", "a")
    except OSError:  # a read-only cache: generate every time
        with tempfile.TemporaryDirectory(prefix="generated-") as scratch:
            yield Path(scratch)
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield kept


def _keep_generated(root: Path, kept: Path) -> None:
    """Store a freshly generated assignment where :func:`_generated_once` finds it (best effort)."""
    partial = kept.with_name(kept.name + ".partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy(root / "gradebook.db", partial / "gradebook.db")
        shutil.copytree(root / "release", partial / "release")
        shutil.rmtree(kept, ignore_errors=True)
        partial.rename(kept)
    except OSError:  # a cache we cannot write costs time, never the result
        shutil.rmtree(partial, ignore_errors=True)


def own_root(root: Path) -> None:
    """Make a copied course folder its own nbgrader root.

    ``doubleedge course init`` writes ``c.CourseDirectory.root`` into the config: without
    this, nbgrader run in a copy would autograde into (and write the gradebook of) the original.
    """
    with open(root / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(f"\nc.CourseDirectory.root = {str(root)!r}\n")


def run_nbgrader(root: Path, args, env: dict | None, timeout: float) -> sandbox.Run:
    """``nbgrader ARGS`` in ``root``, its own process group (killed whole at ``timeout``)."""
    command = [str(Path(sys.executable).with_name("nbgrader")), *args]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=nbgrader_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return sandbox.finish(process, timeout, 64 * 1024)


def nbgrader_env(extra: dict | None) -> dict[str, str]:
    environment = tool_env(extra)
    # A 0.9 s import that nothing in grading uses (see grading/_shim); nbgrader processes only.
    # Real paths: nbgrader runs in another folder.
    environment["PYTHONPATH"] = os.pathsep.join([str(sandbox.SHIM_DIR), *sandbox.pythonpath()])
    return environment


def grade(
    lab: Lab,
    submissions: list[Submission],
    course_root: Path | None = None,
    *,
    workers: int = 1,
    box: sandbox.Sandbox | None = None,
    dask: str | None = None,
) -> list[GradeRow]:
    """Grade every submission; returns one row per learner, in input order (failures carry notes).

    ``dask``: ``"local"`` or a scheduler address to grade on a Dask cluster (see cluster.py).
    """
    box = box or sandbox.make_sandbox("auto")
    with tempfile.TemporaryDirectory(prefix="doubleedge-grade-") as tmp:
        course = CourseFolder(course_root or Path(tmp) / "course", lab)
        course.prepare()
        baseline = baseline_report(lab, course.root / GRADING_DIR / "baseline")
        if dask:
            from doubleedge.grading import cluster

            return cluster.grade(course, submissions, baseline, dask, workers=workers, box=box)
        return grade_prepared(course, submissions, baseline, workers=workers, box=box)


def grade_prepared(
    course: CourseFolder, submissions: list[Submission], baseline: Path | None, *, workers: int, box: sandbox.Sandbox
) -> list[GradeRow]:
    workers = max(1, min(workers, len(submissions) or 1))
    free: queue.Queue[CourseFolder] = queue.Queue()
    for index in range(workers):
        free.put(course.worker_copy(index))
    scratch = course.root / GRADING_DIR / "scratch"

    def task(position: int, submission: Submission) -> Outcome:
        worker = free.get()
        try:
            return grade_in(worker, submission, baseline, scratch / f"{position:04d}", box)
        finally:
            free.put(worker)

    rows: dict[int, GradeRow] = {}
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader") as pool:
            futures = {pool.submit(task, i, s): i for i, s in enumerate(submissions)}
            for future in as_completed(futures):  # the main thread is the gradebook's only writer
                rows[futures[future]] = record(course, future.result())
    finally:
        while not free.empty():
            free.get().close()
    shutil.rmtree(course.root / GRADING_DIR / "workers", ignore_errors=True)
    return [rows[i] for i in range(len(submissions))]


def grade_one(
    course: CourseFolder, submission: Submission, baseline: Path, scratch: Path, box: sandbox.Sandbox | None = None
) -> GradeRow:
    """Grade one submission directly in ``course`` (serial; the benchmark's unit of work)."""
    box = box or sandbox.make_sandbox("auto")
    if not (course.jupyter_dir / "kernels" / sandbox.KERNEL_NAME).is_dir():
        sandbox.install_kernelspec(course.jupyter_dir)
    work = Path(tempfile.mkdtemp(prefix=f"grade-{submission.learner}-", dir=scratch))
    return record(course, grade_in(course, submission, baseline, work, box))


def grade_in(
    worker: CourseFolder, submission: Submission, baseline: Path, scratch: Path, box: sandbox.Sandbox
) -> Outcome:
    """Everything for one submission in one worker's course copy; never raises for a bad submission."""
    outcome = Outcome(submission)
    lab = worker.lab
    try:
        if not LEARNER_ID.fullmatch(submission.learner):
            raise GradingError(f"learner id {submission.learner!r} is not allowed (letters, digits, _ . - only)")
        notebook = _read_submission(submission.path, worker)
    except GradingError as exc:
        outcome.notes.append(str(exc).strip().splitlines()[0])
        return outcome
    outcome.accepted = True
    outcome.notes += _modified_test_cells(notebook, worker)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    kernel_scratch = sandbox.short_scratch()
    try:
        _autograde(worker, submission.learner, notebook, kernel_scratch, box, outcome)
        try:
            result = authoritative.run(
                lab.number,
                submission.learner,
                worker.source_cells()["setup"].source,
                solution_cells(worker.source_cells(), notebook),
                baseline,
                lab.heldout_attacks,
                scratch / "authoritative",
                box,
            )
        except RuntimeError as exc:
            outcome.notes.append(str(exc).strip().splitlines()[0][:300])
            return outcome
        outcome.metrics = result["metrics"]
        if lab.hints is not None:  # how many hints the learner took (a column of its own in the CSV)
            outcome.metrics["hints_used"] = len(lab.hints(Path(submission.path).parent))
        outcome.attacks = result.get("attacks", {})
        outcome.passed = {k: v["passed"] for k, v in result["tests"].items()}
        outcome.reasons = {k: v["reason"] for k, v in result["tests"].items() if not v["passed"]}
        outcome.notes += [f"{k}: {v}" for k, v in outcome.reasons.items()]
    finally:
        if not os.environ.get("DOUBLEEDGE_KEEP_SCRATCH"):
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(kernel_scratch, ignore_errors=True)
    return outcome


def _autograde(
    worker: CourseFolder, learner: str, notebook, scratch: Path, box: sandbox.Sandbox, outcome: Outcome
) -> None:
    """nbgrader autograde with the sandboxed kernel; notes (never raises) when it fails."""
    from nbgrader.api import Gradebook, MissingEntry

    target = worker.submitted_path(learner)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    nbformat.write(notebook, target)
    timestamp = submission_timestamp(outcome.submission.path)
    if timestamp:
        (target.parent / "timestamp.txt").write_text(timestamp, "utf-8")
    shutil.rmtree(worker.autograded_dir(learner), ignore_errors=True)
    hidden, kept = authoritative.reference_solutions(worker.lab)  # the kernel runs learner code too
    env = sandbox.kernel_environment(box, scratch, worker.jupyter_dir, learner, _kernel_cache(worker.lab, scratch),
                                     hidden=hidden, kept=kept)  # fmt: skip
    limit = box.limits.notebook_seconds
    try:
        done = worker.autograde(learner, env, limit)
    finally:
        sandbox.remove_kernel_cgroup(scratch, box.limits)
    if done.timed_out:
        outcome.notes.append(f"autograde: the notebook did not finish within {limit} s (no notebook feedback)")
    elif done.returncode != 0:
        outcome.notes.append(f"autograde: {_nbgrader_failure(done.stdout + done.stderr)} (no notebook feedback)")
    with Gradebook(worker.gradebook_url) as gradebook:
        try:
            submission = gradebook.find_submission(worker.lab.slug, learner)
        except MissingEntry:
            return
        outcome.timestamp = submission.timestamp
        outcome.late_penalty = submission.late_submission_penalty
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.auto_score is not None:
                    outcome.nbgrader_scores[grade.name] = float(grade.auto_score)
    folder = worker.autograded_dir(learner)
    if folder.is_dir() and not done.timed_out and done.returncode == 0:
        outcome.autograded = folder
        for path in folder.glob("*.ipynb"):
            if nbextras.CUT_MARKER in path.read_text("utf-8", errors="replace"):
                outcome.notes.append(f"autograde: output of a cell was cut at {box.limits.output_bytes} bytes")


def _kernel_cache(lab: Lab, scratch: Path) -> Path | None:
    """The kernel's own cache folder, filled by the lab's judge when it has something to share."""
    fill = getattr(judge_for(lab.number), "kernel_cache", None)
    if fill is None:
        return None
    folder = scratch / "cache"
    fill(folder)
    return folder


def _nbgrader_failure(log: str) -> str:
    if "DeadKernelError" in log:
        return "the kernel died (a limit on memory, CPU time, processes or output, or it killed itself)"
    errors = re.findall(r"^\s*([\w.]+(?:Error|Exception): .{0,160})", log, flags=re.M)
    return f"nbgrader failed: {errors[-1]}" if errors else "nbgrader failed"


def submission_timestamp(path: Path) -> str | None:
    """nbgrader's ``timestamp.txt`` next to the notebook or in a parent (exchange and collect layouts)."""
    for folder in list(Path(path).parents)[:3]:
        stamp = folder / "timestamp.txt"
        if stamp.is_file() and not stamp.is_symlink() and stamp.stat().st_size < 200:
            return stamp.read_text("utf-8", errors="replace").strip()
    return None


def record(course: CourseFolder, outcome: Outcome) -> GradeRow:
    """Write one outcome into the course's gradebook (main thread only) and make its CSV row."""
    from nbgrader.api import Gradebook

    learner = outcome.submission.learner
    row = GradeRow(learner, course.lab.number, notes=list(outcome.notes), metrics=dict(outcome.metrics),
                   attacks=dict(outcome.attacks))  # fmt: skip
    if not outcome.accepted:
        row.max_score = _max_score(course)
        return row
    if outcome.autograded is not None and outcome.autograded != course.autograded_dir(learner):
        shutil.rmtree(course.autograded_dir(learner), ignore_errors=True)
        shutil.copytree(outcome.autograded, course.autograded_dir(learner))
    elif outcome.autograded is None:
        shutil.rmtree(course.autograded_dir(learner), ignore_errors=True)  # no stale feedback from a previous run
    slug = course.lab.slug
    with Gradebook(course.gradebook_url) as gradebook:
        gradebook.update_or_create_student(learner)
        kwargs = {"timestamp": outcome.timestamp} if outcome.timestamp else {}
        with warnings.catch_warnings():  # nbgrader's own ORM use warns while it creates the rows
            warnings.simplefilter("ignore")
            submission = gradebook.update_or_create_submission(slug, learner, **kwargs)
        for nb in submission.notebooks:
            if outcome.late_penalty is not None:
                nb.late_submission_penalty = outcome.late_penalty
            for grade in nb.grades:
                if grade.name in manual_answers(course):
                    _await_person(grade, row)
                elif grade.name in outcome.passed or grade.name in authoritative_tests(course):
                    ok = outcome.passed.get(grade.name, False)
                    grade.auto_score = grade.max_score if ok else 0.0
                    row.tests[grade.name] = grade.auto_score
                else:
                    grade.auto_score = outcome.nbgrader_scores.get(grade.name, 0.0)
        gradebook.db.commit()
        submission = gradebook.find_submission(slug, learner)
        row.score, row.max_score = submission.score, submission.max_score
    return row


def authoritative_tests(course: CourseFolder) -> set[str]:
    """The graded test cells whose score the authoritative run decides (every auto-graded code test)."""
    return {
        k
        for k, c in course.source_cells().items()
        if c.metadata["nbgrader"].get("grade") and c.cell_type == "code" and not c.metadata["nbgrader"].get("solution")
    }


def manual_answers(course: CourseFolder) -> set[str]:
    """The written answers a person grades: nbgrader's manually graded answers (grade and solution;
    a Markdown reading, or a code cell whose prose a person judges, such as Lab 09's findings)."""
    return {k for k, c in course.source_cells().items() if c.metadata["nbgrader"].get("grade")
            and c.metadata["nbgrader"].get("solution")}  # fmt: skip


def _await_person(grade, row: GradeRow) -> None:  # an nbgrader.api.Grade
    """No automatic points for a written answer: it waits for a person, whose score a regrade keeps."""
    grade.auto_score = None
    grade.needs_manual_grade = grade.manual_score is None
    row.manual[grade.name] = grade.manual_score
    if grade.manual_score is None:
        row.manual_pending += grade.max_score


def _read_submission(path: Path, course: CourseFolder) -> nbformat.NotebookNode:
    path = Path(path)
    if path.is_symlink() or any(p.is_symlink() for p in list(path.parents)[:2]):
        raise GradingError("the submission is a symbolic link: submit the notebook file itself")
    if not path.is_file():
        raise GradingError(f"no notebook submitted ({path.name} missing)")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise GradingError(f"the notebook is {size // 2**20} MB: larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    if size == 0:
        raise GradingError("not a valid notebook: the file is empty")
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # json, nbformat and encoding errors alike
        raise GradingError(f"not a valid notebook: {type(exc).__name__}: {str(exc)[:120]}") from None
    expected = set(course.source_cells())
    present = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in notebook.cells}
    if not expected & present:
        raise GradingError(f"this is not the Lab {course.lab.number} notebook (none of its graded cells are there)")
    return notebook


def _modified_test_cells(notebook: nbformat.NotebookNode, course: CourseFolder) -> list[str]:
    """Notes for test or read-only cells the learner changed or deleted (nbgrader restores them)."""
    source = {k: c for k, c in course.source_cells().items() if c.metadata["nbgrader"].get("locked")}
    notes, seen = [], set()
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        original = source.get(grade_id)
        if original is None or grade_id in seen:
            continue
        seen.add(grade_id)
        visible = visible_part(cell.source)
        if visible != visible_part(original.source) and not _earlier_release(course.lab, grade_id, visible):
            notes.append(f"{grade_id}: test cell was modified; the original was restored for grading")
    for grade_id in source:
        if grade_id not in seen:
            notes.append(f"{grade_id}: cell was deleted; the grader checked your code without it")
    return notes


def _earlier_release(lab: Lab, grade_id: str, visible: str) -> bool:
    """The test cell as an earlier release of the lab showed it (Lab.earlier_test_cells)."""
    return hashlib.sha256(visible.encode()).hexdigest() in lab.earlier_test_cells.get(grade_id, ())


def visible_part(source: str) -> str:
    """What the learner's copy shows of a test cell (hidden tests removed), without trailing space."""
    visible = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", source, flags=re.S)
    return visible.strip()


def solution_cells(source: dict[str, dict], notebook) -> dict[str, str]:
    """``notebook``'s code solution cells by grade_id, for those of the lab's ``source`` cells (by
    grade_id), in the source's order: the first copy of a duplicate, "" for a missing one."""
    solution_ids = [
        k for k, c in source.items() if c.metadata["nbgrader"].get("solution") and c.cell_type == "code"
    ]  # written answers (markdown) are for a person, not for the runner
    submitted: dict[str, str] = {}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in solution_ids and grade_id not in submitted and isinstance(cell.get("source"), str):
            submitted[grade_id] = cell.source
    return {k: submitted.get(k, "") for k in solution_ids}


def reference_cells(lab: Lab) -> tuple[str, dict[str, str]]:
    """What the authoritative run gets from the reference learner: the setup cell and the code
    solution cells of the lab's source notebook."""
    notebook = nbformat.read(lab.source_notebook, as_version=4)
    source = {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if "nbgrader" in c.metadata}
    return source["setup"].source, solution_cells(source, notebook)


def _max_score(course: CourseFolder) -> float:
    return float(sum(c.metadata["nbgrader"].get("points", 0) for c in course.source_cells().values()))


def baseline_report(lab: Lab, workdir: Path) -> Path | None:
    """The lab's baseline scan, once per grading run (the same for every learner; None if it has none).
    First of all, the course key: grading derives every learner's secrets (a learner's server cannot)."""
    try:
        course_key()
    except PermissionError as exc:
        raise GradingError(str(exc)) from None
    return judge_for(lab.number).baseline(workdir)


def tool_env(extra: dict | None) -> dict[str, str]:
    env = dict(os.environ)
    # nbgrader calls alembic and jupyter by name: the venv's bin must come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def write_csv(rows: list[GradeRow], path: Path) -> None:
    """One row per learner. A written answer's column is empty until a person grades it in formgrader
    (then ``doubleedge grade`` again, or ``doubleedge course export``, shows the score); ``manual_pending``
    is the points still waiting for a person, counted in ``max_score`` but not yet in ``score``."""
    tests = sorted({t for r in rows for t in r.tests})
    manual = sorted({m for r in rows for m in r.manual})
    metrics = sorted({m for r in rows for m in r.metrics})
    pending = ["manual_pending"] if manual else []
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "lab", "score", "max_score", *tests, *metrics, *manual, *pending, "notes"])
        for r in rows:
            writer.writerow(
                [
                    r.learner,
                    r.lab,
                    r.score,
                    r.max_score,
                    *(r.tests.get(t, 0.0) for t in tests),
                    *(r.metrics.get(m, "") for m in metrics),
                    *(_blank_if_none(r.manual.get(m)) for m in manual),
                    *([r.manual_pending] if manual else []),
                    " | ".join(r.notes),
                ]
            )


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value


def result_json(rows: list[GradeRow]) -> str:
    """The rows as JSON (the course summary and the tests read this)."""
    return json.dumps([r.__dict__ for r in rows], indent=1, default=str)
