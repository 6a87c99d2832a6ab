"""Grading a class in parallel: the serial CSV and gradebook from three worker processes, from a
local Dask cluster and from a Dask scheduler that loses a worker. One serial run is the reference."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from submissions import edited

from doubleedge.grading import cluster
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import (
    CourseFolder,
    GradingError,
    Submission,
    grade,
    write_csv,
)
from doubleedge.grading.sandbox import make_sandbox, unavailable_for_tests

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]

LAB = get_lab("01")
DASK = Path(sys.executable).with_name("dask")



@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    release = tmp_path_factory.mktemp("release-course")
    course = CourseFolder(release, LAB)
    course.prepare()
    learner_copy = course.root / "release" / LAB.slug / f"{LAB.slug}.ipynb"
    (folder / "broken").mkdir()
    (folder / "broken" / "a.ipynb").write_text("{", "utf-8")
    ann = edited(LAB.source_notebook, folder / "ann" / "a.ipynb")
    (folder / "ann" / "timestamp.txt").write_text("2026-11-30 09:15:00 UTC", "utf-8")
    return [
        Submission("ann", ann),
        Submission("ben", edited(learner_copy, folder / "ben" / "a.ipynb")),
        Submission("broken", folder / "broken" / "a.ipynb"),
        Submission("cat", edited(LAB.source_notebook, folder / "cat" / "a.ipynb",
                                  scan_answers='MOST_SUCCESSFUL_PROBE = "dan.STAN"\nOVERALL_ASR = 0.1')),
        Submission("dan", edited(LAB.source_notebook, folder / "dan" / "a.ipynb", injection='MY_INJECTION = "hi"')),
    ]  # fmt: skip


def _scores(db: Path) -> list[tuple]:
    from nbgrader.api import Gradebook

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Gradebook(f"sqlite:///{db}") as gradebook:
        return sorted(
            (student.id, len(student.submissions), grade.name, grade.auto_score)
            for student in gradebook.students
            for submission in student.submissions
            for notebook in submission.notebooks
            for grade in notebook.grades
        )


def _csv(rows, path: Path) -> str:
    write_csv(rows, path)
    return path.read_text("utf-8")


@pytest.fixture(scope="module")
def serial(submissions, tmp_path_factory):
    root = tmp_path_factory.mktemp("serial")
    rows = grade(LAB, submissions, root / "course", workers=1, box=make_sandbox("bwrap"))
    assert (rows[0].score, rows[1].score, rows[2].score, rows[4].score) == (13.5, 0, 0, 10.5)  # 0.5 of each 14 (the written reading) waits for a person
    return _csv(rows, root / "grades.csv"), _scores(root / "course" / "gradebook.db")


def test_three_workers_write_the_serial_csv_and_gradebook(submissions, serial, tmp_path):
    rows = grade(LAB, submissions, tmp_path / "course", workers=3, box=make_sandbox("bwrap"))
    assert [r.learner for r in rows] == ["ann", "ben", "broken", "cat", "dan"]
    assert _csv(rows, tmp_path / "grades.csv") == serial[0]
    assert _scores(tmp_path / "course" / "gradebook.db") == serial[1]
    assert len(serial[1]) == 4 * 10  # four notebooks in the gradebook: nine tests and the reading each


def test_local_cluster_writes_the_serial_csv_and_gradebook(submissions, serial, tmp_path):
    rows = grade(LAB, submissions, tmp_path / "course", workers=2, box=make_sandbox("bwrap"), dask="local")
    assert _csv(rows, tmp_path / "grades.csv") == serial[0]
    assert _scores(tmp_path / "course" / "gradebook.db") == serial[1]
    assert rows[2].notes[0].startswith("not a valid notebook")  # refused on the worker, noted as serial grading does


def test_local_cluster_listens_on_loopback_only_without_dashboard(tmp_path):
    with cluster.connect("local", 2, tmp_path) as client:
        info = client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
        http = info["services"]["dashboard"]  # the scheduler's HTTP server: health checks, no dashboard pages
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{http}/status", timeout=10)
        assert urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=10).read() == b"ok"
        here = psutil.Process()
        listening = [
            c.laddr.ip
            for p in [here, *here.children(recursive=True)]
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and set(listening) == {"127.0.0.1"}


def test_refuses_an_address_that_is_not_a_scheduler():
    with pytest.raises(ValueError, match="scheduler address"):
        cluster.check_address("10.0.0.5:8786")


def test_a_scheduler_that_does_not_answer_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_SECONDS", 2)
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(GradingError, match=f"no Dask scheduler answered at {address}"):
        with cluster.connect(address, 1, tmp_path):
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)  # fmt: skip


def _kill_tree(process: subprocess.Popen) -> None:
    """Freeze the process and everything under it (nbgrader and kernels run in their own sessions), then kill all."""
    try:
        root = psutil.Process(process.pid)
        root.send_signal(signal.SIGSTOP)
        tree, seen = [root], set()
        while len(seen) < len(tree):
            for p in list(tree):
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                for child in p.children():
                    child.send_signal(signal.SIGSTOP)
                    tree.append(child)
        for p in tree:
            p.kill()
    except psutil.NoSuchProcess:
        pass
    process.wait(timeout=30)


@pytest.fixture
def scheduler_and_two_workers(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [_start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                        log=tmp_path / "scheduler.log")]  # fmt: skip
    # A temporary folder per worker, short as a kernel's socket paths need it: a killed worker leaves
    # the scratch folder of the submission it was grading in its own, and this fixture removes them.
    temp = Path(tempfile.mkdtemp(prefix="dek-workers-", dir="/tmp"))
    workers = {}
    for name in ("a", "b"):
        (temp / name).mkdir()
        workers[name] = _start("worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                               "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp_path / name),
                               log=tmp_path / f"worker-{name}.log", env=dict(os.environ, TMPDIR=str(temp / name)))  # fmt: skip
        processes.append(workers[name])
    try:
        yield address, workers, temp
    finally:
        for process in reversed(processes):
            _kill_tree(process)
        shutil.rmtree(temp, ignore_errors=True)


def test_two_workers_one_killed_mid_run_loses_and_doubles_nothing(submissions, serial, scheduler_and_two_workers,
                                                                   tmp_path, class_baseline):  # fmt: skip
    from distributed import Client

    address, workers, temp = scheduler_and_two_workers
    course = CourseFolder(tmp_path / "course", LAB)
    course.prepare()
    baseline = class_baseline(LAB.number)
    graded: list[tuple[int, str]] = []
    result = {}

    def run() -> None:
        try:
            result["rows"] = cluster.grade(course, submissions, baseline, address, workers=1,
                                           box=make_sandbox("bwrap"), on_graded=lambda p, w: graded.append((p, w)))  # fmt: skip
        except BaseException as exc:  # reported by the test below
            result["error"] = exc

    with Client(address, timeout=30) as watcher:
        watcher.wait_for_workers(2, timeout=60)
        names = {a: w["name"] for a, w in watcher.scheduler_info()["workers"].items()}
        victim = next(a for a, n in names.items() if n == "a")
        grading = threading.Thread(target=run)
        grading.start()
        deadline = time.monotonic() + 120
        while not watcher.processing().get(victim) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # well into its submission: the kernel is running the learner's notebook
        on_victim = set(watcher.processing().get(victim, ()))
        _kill_tree(workers["a"])
        left = [p.name for p in (temp / "a").iterdir()]  # the killed worker's kernel scratch, in its own folder
        grading.join(timeout=600)
    assert not grading.is_alive() and "error" not in result, result.get("error")
    assert on_victim, "worker a was not grading anything when it was killed"
    assert any(name.startswith("dek-") for name in left), left
    assert _csv(result["rows"], tmp_path / "grades.csv") == serial[0]
    assert _scores(course.root / "gradebook.db") == serial[1]
    positions = [p for p, _ in graded]
    assert sorted(positions) == [0, 1, 2, 3, 4]  # every submission's result recorded once
    survivor = next(a for a, n in names.items() if n == "b")
    learners_on_victim = {k.split("-")[2] for k in on_victim}
    assert learners_on_victim and all(w == survivor for p, w in graded if submissions[p].learner in learners_on_victim)


def test_course_grade_on_a_local_cluster_writes_the_same_grades(submissions, tmp_path):
    """`doubleedge course grade 01 --dask local` against `--workers 1`, from the same collected course folder."""
    doubleedge = str(Path(sys.executable).with_name("doubleedge"))
    collected = tmp_path / "collected"
    subprocess.run([doubleedge, "course", "init", "--dir", str(collected)], check=True, capture_output=True)
    for submission in (submissions[0], submissions[1]):  # ann (with a timestamp) and ben
        target = collected / "submitted" / submission.learner / LAB.slug
        shutil.copytree(submission.path.parent, target)
        (target / "a.ipynb").rename(target / f"{LAB.slug}.ipynb")
    grades = {}
    for name, options in (("serial", ["--workers", "1"]), ("dask", ["--dask", "local", "--workers", "2"])):
        folder = tmp_path / name
        shutil.copytree(collected, folder, symlinks=True)
        (folder / "nbgrader_config.py").write_text(
            (collected / "nbgrader_config.py").read_text("utf-8").replace(str(collected), str(folder)), "utf-8"
        )
        done = subprocess.run([doubleedge, "course", "grade", LAB.number, "--dir", str(folder), *options],
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        grades[name] = ((folder / "grades" / "01.csv").read_text("utf-8"), _scores(folder / "gradebook.db"))
        assert sorted(p.parent.name for p in (folder / "autograded").glob(f"*/{LAB.slug}")) == ["ann", "ben"]
    assert grades["dask"] == grades["serial"]
    assert "ann,01,13.5" in grades["dask"][0]
