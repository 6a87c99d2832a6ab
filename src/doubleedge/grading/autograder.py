"""``nbgrader autograde`` in one long-lived process per grading worker.

Starting the ``nbgrader`` command costs over a second of imports for every submission.
A worker's autograder process imports nbgrader once, then runs one nbgrader command
line per request, as nbgrader's own tests run its apps in-process. The process is on
the host and never runs learner code: for every notebook nbgrader starts a fresh kernel
in its own sandbox (sandbox.py), so what carries over from one learner to the next is
imported modules, never the learner's state.

Everything else stays as with a process per submission: the request's environment is
the whole environment of the run (the kernel's settings, the learner's key), fds 1 and 2
(nbgrader's log, and the kernel's if it writes there) go to the caller, capped, and at
the time limit the process group is killed. A process that timed out, died or failed is
not used again: the next request starts a new one.

``python -m doubleedge.grading.autograder REPLY_FD`` is the process's side: requests on
stdin, one JSON line each (``{"args": [...], "env": {...}}``); the exit code on REPLY_FD.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import traceback
from pathlib import Path

from doubleedge.grading import sandbox

DIED = "died"  # the process ended without a reply (killed by a limit, or it crashed)


class Autograder:
    """The host's side: one process for one course folder, used by one thread at a time."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env  # the process's own environment (without any request's)
        self.process: subprocess.Popen | None = None

    def run(self, args, env: dict[str, str], timeout: float, max_output: int = 64 * 1024) -> sandbox.Run:
        """``nbgrader ARGS`` with ``env`` added to the environment; killed at ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:  # none yet, or it ended between runs
            self.close()
            self._start()
        self._drain(0)  # whatever a previous request's kernel wrote after its reply is not this run's
        log = bytearray()
        self.process.stdin.write((json.dumps({"args": list(args), "env": env}) + "\n").encode())
        self.process.stdin.flush()
        code = self._wait_reply(time.monotonic() + timeout, log, max_output)
        timed_out = code is None
        if code != 0:
            ended = self.close()  # timed out, died or failed: the next learner gets a new process
            code = ended if code in (None, DIED) else code
        return sandbox.Run(code, "", sandbox.capped_text(bytes(log), max_output), timed_out=timed_out)

    def close(self) -> int | None:
        """Kill the process group; the process's exit code (None if there was none)."""
        if self.process is None:
            return None
        sandbox.kill_group(self.process)
        code = self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()
        os.close(self.replies)
        self.process = None
        return code

    def _start(self) -> None:
        read, write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "doubleedge.grading.autograder", str(write)],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one log, in the order it was written
            pass_fds=(write,),
            start_new_session=True,  # one process group: a timeout kills the whole tree
        )
        os.close(write)
        self.replies = read

    def _wait_reply(self, deadline: float, log: bytearray, max_output: int) -> int | None:
        """The exit code, DIED if the process ended without one, or None at the deadline."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            selector.register(self.replies, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    if key.fileobj is self.replies:
                        line = os.read(self.replies, 64)
                        log += self._drain(0)  # written before the reply: already in the pipe
                        return int(line) if line.strip() else DIED
                    chunk = os.read(self.process.stdout.fileno(), 65536)
                    if not chunk:
                        selector.unregister(self.process.stdout)
                    log += chunk
                    del log[: max(0, len(log) - 2 * max_output)]  # keep the tail only, as sandbox.finish does
        return None

    def _drain(self, timeout: float) -> bytes:
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            # bounded: a kernel left behind could keep writing
            while len(data) < (1 << 20) and selector.select(timeout):
                if not (chunk := os.read(self.process.stdout.fileno(), 65536)):
                    break
                data += chunk
        return data


# The process's side -----------------------------------------------------------------


def serve(reply_fd: int) -> None:
    os.set_inheritable(reply_fd, False)  # nbgrader's kernels must never be able to answer for it
    base_env, base_path = dict(os.environ), list(sys.path)
    from nbgrader.apps.nbgraderapp import NbGraderApp  # the import this process exists to pay once

    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(base_env | request["env"])
        code = run_app(NbGraderApp, request["args"])
        sys.path[:] = base_path  # nbgrader puts the course folder first on every start
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(reply_fd, f"{code}\n".encode())


def run_app(app_class, args: list[str]) -> int:
    """One nbgrader command line in this process, with the exit code the command would have."""
    from jupyter_core.application import NoStart

    app = app_class.instance()
    try:
        app.initialize(args)
        app.start()
        code = 0
    except NoStart:  # how a Jupyter app says it ran its subcommand (its launcher exits with 0)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except Exception:  # what the command would print before exiting with 1
        traceback.print_exc()
        code = 1
    finally:
        app.reset()
    return code


if __name__ == "__main__":
    serve(int(sys.argv[1]))
