"""Grading on a Dask cluster: one task per submission, the client the gradebook's only writer.

``doubleedge grade --dask local`` starts a cluster of ``--workers`` processes on this
machine (loopback only, no dashboard); ``--dask tcp://HOST:PORT`` uses the workers of
a scheduler that is already running (Slurm, Kubernetes, or ``dask scheduler`` /
``dask worker`` by hand).

**What travels.** Workers need not share a file system with the client. The client
reads each submission and sends its bytes (with nbgrader's ``timestamp.txt``), and
sends the course folder (config, gradebook, the lab's source and release) and the
baseline scan once to every worker. A task returns the :class:`pipeline.Outcome` and
nbgrader's autograded folder as a tar archive.

**On a worker.** Each worker thread unpacks its own copy of the course folder once
(per course content, cached for the life of the process) and grades each submission
with :func:`pipeline.grade_in`, in the same bubblewrap sandbox as the threaded path.
A task only writes inside that private copy, overwriting whatever an earlier attempt
left, so running it again is safe: when a worker dies, the scheduler gives its tasks
to another worker and the client still receives exactly one result per submission.

**One writer.** The client records every outcome into the course's gradebook with
:func:`pipeline.record`, one at a time, and returns the rows in input order: the
CSV is the one serial grading writes.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from doubleedge.grading import pipeline, sandbox
from doubleedge.grading.labs import get_lab

LOCAL = "local"  # --dask local: a cluster of worker processes on this machine
CONNECT_SECONDS = 30


@dataclass(frozen=True)
class Job:
    """One submission, by value: what a worker needs besides the course and the baseline."""

    lab: str
    position: int
    learner: str
    notebook: bytes
    timestamp: str | None
    box: sandbox.Sandbox


@dataclass
class Graded:
    """What a task sends back: the outcome, nbgrader's autograded folder (tar), and who graded it."""

    outcome: pipeline.Outcome
    autograded: bytes | None
    worker: str


@dataclass(frozen=True)
class Shared:
    """A file tree sent once to every worker; ``digest`` names it in the workers' caches."""

    digest: str
    archive: bytes


def check_address(address: str) -> str:
    """``local`` or a scheduler address; anything else is refused before any work starts."""
    if address == LOCAL or address.startswith(("tcp://", "tls://")):
        return address
    raise ValueError(f"--dask takes 'local' or a scheduler address such as tcp://10.0.0.5:8786, not {address!r}")


@contextmanager
def connect(address: str, workers: int, local_directory: Path) -> Iterator[object]:
    """A Dask client: on a new loopback-only local cluster, or on the scheduler at ``address``."""
    from distributed import Client, LocalCluster

    if check_address(address) != LOCAL:
        try:
            client = Client(address, timeout=CONNECT_SECONDS)
        except OSError as exc:
            raise pipeline.GradingError(
                f"no Dask scheduler answered at {address} within {CONNECT_SECONDS} s ({exc.__class__.__name__}): "
                "check the address, or start one with `dask scheduler`"
            ) from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=max(1, workers),
        threads_per_worker=1,  # the heavy work is in sandboxed subprocesses; one submission per process
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        # No dashboard pages; the scheduler's small HTTP server (health, metrics) always starts: loopback, any port.
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
        local_directory=str(local_directory),
    )
    with cluster, Client(cluster) as client:
        yield client


def grade(
    course: pipeline.CourseFolder,
    submissions: list[pipeline.Submission],
    baseline: Path | None,
    address: str,
    *,
    workers: int,
    box: sandbox.Sandbox,
    on_graded: Callable[[int, str], None] | None = None,
) -> list[pipeline.GradeRow]:
    """Grade on a cluster (``local`` or a scheduler address); the same rows as ``pipeline.grade_prepared``.

    ``on_graded(position, worker)`` is called as each submission's result arrives.
    """
    with connect(address, workers, course.root / pipeline.GRADING_DIR / "dask") as client:
        return grade_with(client, course, submissions, baseline, box=box, on_graded=on_graded)


def grade_with(client, course, submissions, baseline, *, box, on_graded=None) -> list[pipeline.GradeRow]:
    """Grade with an open Dask client (see :func:`grade`)."""
    from distributed import as_completed

    course_tree = client.scatter(pack_course(course), broadcast=True, hash=False)
    baseline_file = client.scatter(pack_files([baseline]) if baseline else None, broadcast=True, hash=False)
    rows: dict[int, pipeline.GradeRow] = {}
    futures = {}
    for position, submission in enumerate(submissions):
        job = make_job(course.lab.number, position, submission, box)
        if job is None:  # refused before any grading: the same note as serial grading, here
            scratch = course.root / pipeline.GRADING_DIR / "scratch" / f"{position:04d}"
            rows[position] = pipeline.record(course, pipeline.grade_in(course, submission, baseline, scratch, box))
            continue
        future = client.submit(grade_task, job, course_tree, baseline_file, key=_key(course, submission))
        futures[future] = position
    with tempfile.TemporaryDirectory(prefix="doubleedge-autograded-") as unpacked:
        for future in as_completed(futures):  # one writer: this loop, one result per submission
            position = futures[future]
            submission = submissions[position]
            outcome, worker = _outcome(future, submission, Path(unpacked) / f"{position:04d}")
            rows[position] = pipeline.record(course, outcome)
            if on_graded:
                on_graded(position, worker)
    return [rows[i] for i in range(len(submissions))]


def _key(course: pipeline.CourseFolder, submission: pipeline.Submission) -> str:
    """Readable in the scheduler's logs, and unique: two gradings on one scheduler never share a result."""
    return f"grade-lab{course.lab.number}-{submission.learner}-{uuid.uuid4().hex}"


def _outcome(future, submission: pipeline.Submission, unpacked: Path) -> tuple[pipeline.Outcome, str]:
    """The task's outcome with the original submission and its autograded folder on this machine; who graded it."""
    from distributed import KilledWorker

    try:
        graded: Graded = future.result()
    except KilledWorker:  # a submission that takes its worker down every time it is tried
        outcome = pipeline.Outcome(submission, accepted=True)
        outcome.notes.append("grading process: the worker grading this submission died on every attempt")
        return outcome, ""
    outcome = replace(graded.outcome, submission=submission, autograded=None)
    if graded.autograded is not None:
        unpack(graded.autograded, unpacked)
        outcome.autograded = unpacked
    return outcome, graded.worker


def make_job(lab: str, position: int, submission: pipeline.Submission, box: sandbox.Sandbox) -> Job | None:
    """The submission's bytes, or None when the grader refuses it before reading (link, missing, too big, bad id).

    These are the first checks of ``pipeline._read_submission``: whatever is not sent
    is refused by ``grade_in`` on the client with its usual note. Everything else is
    checked again, from the bytes, on the worker.
    """
    path = Path(submission.path)
    if not pipeline.LEARNER_ID.fullmatch(submission.learner):
        return None
    if path.is_symlink() or any(p.is_symlink() for p in list(path.parents)[:2]) or not path.is_file():
        return None
    if not 0 < path.stat().st_size <= pipeline.MAX_NOTEBOOK_BYTES:
        return None
    return Job(lab, position, submission.learner, path.read_bytes(), pipeline.submission_timestamp(path), box)


# on a worker -------------------------------------------------------------------------

_COURSES: dict[tuple[str, int], pipeline.CourseFolder] = {}
_BASELINES: dict[str, Path] = {}
_LOCK = threading.Lock()


def grade_task(job: Job, course_tree: Shared, baseline_file: Shared | None) -> Graded:
    """Grade one submission in this worker thread's private course copy (a Dask task; safe to repeat)."""
    from distributed import get_worker

    worker = _worker_course(job.lab, course_tree)
    incoming = worker.root / pipeline.GRADING_DIR / "incoming" / job.learner
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    path = incoming / f"{worker.lab.slug}.ipynb"
    path.write_bytes(job.notebook)
    if job.timestamp:
        (incoming / "timestamp.txt").write_text(job.timestamp, "utf-8")
    baseline = _baseline(baseline_file)
    scratch = worker.root / pipeline.GRADING_DIR / "scratch" / f"{job.position:04d}"
    try:
        outcome = pipeline.grade_in(worker, pipeline.Submission(job.learner, path), baseline, scratch, job.box)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    archive = pack_tree(outcome.autograded) if outcome.autograded is not None else None
    return Graded(replace(outcome, autograded=None), archive, get_worker().address)


def _worker_course(lab: str, course_tree: Shared) -> pipeline.CourseFolder:
    """This thread's course copy for ``course_tree``, unpacked on first use (one per thread: one gradebook each)."""
    key = (course_tree.digest, threading.get_ident())
    with _LOCK:
        if key not in _COURSES:
            root = Path(tempfile.mkdtemp(prefix=f"course-{course_tree.digest[:12]}-", dir=_local_directory()))
            unpack(course_tree.archive, root)
            pipeline.own_root(root)
            course = pipeline.CourseFolder(root, get_lab(lab))
            sandbox.install_kernelspec(course.jupyter_dir)  # its paths are this machine's
            _COURSES[key] = course
        return _COURSES[key]


def _baseline(shared: Shared | None) -> Path | None:
    if shared is None:
        return None
    with _LOCK:
        if shared.digest not in _BASELINES:
            folder = Path(tempfile.mkdtemp(prefix=f"baseline-{shared.digest[:12]}-", dir=_local_directory()))
            unpack(shared.archive, folder)
            (_BASELINES[shared.digest],) = folder.iterdir()
        return _BASELINES[shared.digest]


def _local_directory() -> str:
    from distributed import get_worker

    return get_worker().local_directory


# archives ----------------------------------------------------------------------------


def pack_course(course: pipeline.CourseFolder) -> Shared:
    """What a worker copy needs (as ``CourseFolder.worker_copy``): config, gradebook, this lab's source and release."""
    slug = course.lab.slug
    names = ["nbgrader_config.py", "gradebook.db", f"source/{slug}", f"release/{slug}"]
    return _shared(course.root, [n for n in names if (course.root / n).exists()])


def pack_files(paths: list[Path]) -> Shared:
    return _shared(paths[0].parent, [p.name for p in paths])


def _shared(root: Path, names: list[str]) -> Shared:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            tar.add(root / name, arcname=name)
    archive = buffer.getvalue()
    return Shared(hashlib.sha256(archive).hexdigest(), archive)


def pack_tree(folder: Path) -> bytes:
    return _shared(folder, sorted(p.name for p in folder.iterdir())).archive


def unpack(archive: bytes, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")  # refuses links out of ``into`` and absolute paths
