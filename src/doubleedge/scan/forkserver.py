"""Starting garak processes from one that has garak's libraries loaded.

A scan's garak process spends most of its start-up importing the libraries garak uses (HTTP,
YAML, progress bars, language detection...): about 0.25 s of CPU before it sends a prompt, for
every scan, in every notebook, grading kernel and test. ``run_garak`` therefore starts each
garak process by forking it from a launcher process (one per scanning process, started on its
first scan) that has imported those libraries once.

Only libraries whose import reads nothing of a scan's own environment are loaded in the
launcher (``PRELOAD``). garak itself reads its folders from the environment when it is
imported, so each forked process sets the scan's environment, folder and output first, then
runs ``python -m doubleedge.scan.launch`` with the scan's arguments as a new process would:
garak, its plugins and the course's are imported there, afresh.

The launcher is Linux-only (it waits for its children through pidfds); elsewhere, or with
``DOUBLEEDGE_GARAK_FORK=off``, each scan starts a new Python as before.

Protocol (one JSON object per line): the client writes ``{"id", "argv", "cwd", "env",
"output"}``; the launcher answers ``{"id", "pid"}`` once the process is forked, then
``{"pid", "returncode", "cpu_seconds"}`` when it ends (the launcher is its parent). Closing the launcher's
input stops it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import itertools
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

ENV = "DOUBLEEDGE_GARAK_FORK"
# What garak's start-up imports besides garak (measured with ``python -X importtime``), where
# the import reads no environment: not jsonschema, httpx or aiohttp, nltk or numpy, which
# launch.py keeps out of a scan or loads late on purpose.
PRELOAD = (
    "argparse", "asyncio", "backoff", "base64", "colorama", "csv", "dataclasses", "datetime",
    "email.parser", "hashlib", "http.cookiejar", "importlib.metadata", "inspect", "json",
    "jsonpath_ng", "langdetect", "logging", "markdown", "multiprocessing", "random", "requests",
    "ssl", "statistics", "tqdm", "typing", "uuid", "yaml",
)  # fmt: skip


class LauncherError(RuntimeError):
    pass


def available() -> bool:
    return hasattr(os, "pidfd_open") and os.environ.get(ENV, "").strip().lower() != "off"


# --- the launcher process ---------------------------------------------------------------------


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the scans (their client kills them); it ends on EOF
    preload()
    requests_fd, answers_fd = sys.stdin.fileno(), sys.stdout.fileno()
    running: dict[int, int] = {}  # pidfd -> pid
    pending = b""
    while True:
        ready, _, _ = select.select([requests_fd, *running], [], [])
        for fd in ready:
            if fd != requests_fd:
                pid = running.pop(fd)
                os.close(fd)
                _, status, usage = os.wait4(pid, 0)
                _answer(answers_fd, {"pid": pid, "returncode": os.waitstatus_to_exitcode(status),
                                     "cpu_seconds": usage.ru_utime + usage.ru_stime})  # fmt: skip
                continue
            chunk = os.read(requests_fd, 65536)
            if not chunk:
                return  # the client has gone: its scans were killed or have ended
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, [requests_fd, *running])
                running[os.pidfd_open(pid)] = pid
                _answer(answers_fd, {"id": request["id"], "pid": pid})


def _answer(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")  # one write: whole lines, under the pipe's atomic size


def _child(request: dict, inherited: list[int]) -> None:
    """In the forked process: become ``python -m doubleedge.scan.launch ARGV`` in the scan's
    folder and environment, with its output in a file; never returns."""
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):  # fmt: skip
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        os.dup2(1, 2)
        sys.path[0] = os.getcwd()  # as ``python -m`` puts the folder it starts in first
        sys.argv = ["launch", *request["argv"]]
        try:
            runpy.run_module("doubleedge.scan.launch", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        atexit._run_exitfuncs()  # as at a process's end: garak's log and report are flushed
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# --- the client side, in the process that scans -------------------------------------------------


class Forked:
    """A garak process started by the launcher: ``wait``, ``kill`` and ``returncode`` as Popen's."""

    def __init__(self, pid: int, ended: threading.Event, results: dict[int, dict]) -> None:
        self.pid, self._ended, self._results = pid, ended, results

    @property
    def returncode(self) -> int | None:
        return self._results[self.pid]["returncode"] if self.pid in self._results else None

    @property
    def cpu_seconds(self) -> float | None:
        """The process's CPU time, once it has ended (the benchmark's measure)."""
        return self._results[self.pid].get("cpu_seconds") if self.pid in self._results else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"garak (pid {self.pid})", timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class Launcher:
    def __init__(self, env: dict[str, str]) -> None:
        # -P: nothing of the folder it starts in shadows a library it loads (a learner's yaml.py)
        self._process = subprocess.Popen([sys.executable, "-P", "-m", "doubleedge.scan.forkserver"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)  # fmt: skip
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._started: dict[int, dict] = {}
        self._ends: dict[int, threading.Event] = {}  # by pid, while the process runs
        self._results: dict[int, dict] = {}  # by pid, once ended
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], output: Path) -> Forked:
        with self._lock:
            if self._closed:
                raise LauncherError("the garak launcher has stopped")
            ident = next(self._ids)
            started = self._started[ident] = {"event": threading.Event()}
            request = {"id": ident, "argv": argv, "cwd": str(cwd), "env": env, "output": str(output)}
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
        if not started["event"].wait(60) or "pid" not in started:
            raise LauncherError("the garak launcher did not start the scan")
        return Forked(started["pid"], started["ended"], self._results)

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def _read(self) -> None:
        for line in self._process.stdout:
            message = json.loads(line)
            with self._lock:
                if "id" in message:
                    started = self._started.pop(message["id"])
                    started["pid"], started["ended"] = message["pid"], threading.Event()
                    self._ends[message["pid"]] = started["ended"]
                    started["event"].set()
                else:
                    self._results[message["pid"]] = message
                    self._ends.pop(message["pid"]).set()
        with self._lock:  # the launcher ended: nothing it started can be waited for any more
            self._closed = True
            for started in self._started.values():
                started["event"].set()
            for pid, ended in self._ends.items():  # orphans now: stopped, as a scan that cannot be followed
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._results.setdefault(pid, {"returncode": -signal.SIGKILL})
                ended.set()


_launchers: dict[tuple[int, str, str], Launcher] = {}
_launchers_lock = threading.Lock()


def launcher(env: dict[str, str]) -> Launcher:
    """This process's launcher for garak processes with ``env``'s Python path (started on first use)."""
    # Started with the first scan's environment, whose PYTHONHASHSEED (garak_env's "0") becomes
    # every forked process's: garak's prompt caps depend on string hashing.
    key = (os.getpid(), sys.executable, env.get("PYTHONPATH", ""))  # a forked copy of this process needs its own
    with _launchers_lock:
        if key not in _launchers or not _launchers[key].alive():
            _launchers[key] = Launcher(env)
        return _launchers[key]


if __name__ == "__main__":
    serve()
