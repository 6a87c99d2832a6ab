"""``doubleedge start``: what ``make start`` runs.

Generates the site's content (``doubleedge.site_content``) and builds the course site with
MkDocs, makes the learner's copies of the labs in ``workspace/`` (never overwriting work
already there), serves the site on loopback and runs JupyterLab on the workspace until Ctrl-C.

The site is built into ``site/`` in the repository, or into ``$DOUBLEEDGE_SITE_DIR``
(tests build elsewhere so that they never touch the repository).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import webbrowser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from doubleedge.grading.pipeline import CourseFolder, tool_env
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

LOOPBACK = "127.0.0.1"
# Jupyter settings for the learner's own JupyterLab: no instructor tools (nbgrader's
# formgrader, Create Assignment, course list) and no news pop-up. The instructor's server
# does not read this folder and keeps them.
LEARNER_JUPYTER_CONFIG = Path(__file__).parent / "data" / "learner_jupyter"
READY_SECONDS = 120


def make_workspace(dest: Path) -> list[Path]:
    """Learner copies of every lab (nbgrader's release version). Returns the new ones."""
    created = []
    with tempfile.TemporaryDirectory(prefix="doubleedge-release-") as tmp:
        for lab in LABS.values():
            target = Path(dest) / lab.slug
            if (target / f"{lab.slug}.ipynb").exists():
                continue  # the learner's work: never overwrite it
            course = CourseFolder(Path(tmp) / lab.slug, lab)
            course.prepare()
            shutil.copytree(course.root / "release" / lab.slug, target, dirs_exist_ok=True)
            created.append(target)
    return created


def build_site(dest: Path) -> None:
    from doubleedge.site_content import generate

    generate(say=print)  # the generated content the site reads (course/generated/)
    env = tool_env({"NO_MKDOCS_2_WARNING": "1"})
    subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--quiet", "-d", str(dest)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )


def serve_site(folder: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _QuietServer((LOOPBACK, port), handler)
    threading.Thread(target=server.serve_forever, name="site", daemon=True).start()
    return server


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A browser that drops a connection (a closed tab, a cancelled load) is normal: no traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def jupyterlab_command(workspace: Path, port: int) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        f"--ServerApp.ip={LOOPBACK}",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={workspace}",
        "--ServerApp.port_retries=0",
        "--ServerApp.log_level=WARN",  # start-up chatter: we print the link with its token ourselves
        "--LabApp.log_level=WARN",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI run as root
    return command


def start(site_port: int, lab_port: int, workspace: Path, no_browser: bool = False,
          site_dir: Path | None = None) -> int:  # fmt: skip
    workspace.mkdir(parents=True, exist_ok=True)
    for made in make_workspace(workspace):
        print(f"New lab copy: {made}")
    site_dir = site_dir or Path(os.environ.get("DOUBLEEDGE_SITE_DIR") or REPO_ROOT / "site")
    build_site(site_dir)
    site = serve_site(site_dir, site_port)
    open_browser = not no_browser and has_browser()
    command = jupyterlab_command(workspace, lab_port) + ([] if open_browser else ["--no-browser"])
    env = learner_jupyter_env(tool_env(None))
    lab = subprocess.Popen(command, env=env)
    stop_as_ctrl_c(signal.SIGTERM, signal.SIGHUP)
    try:
        wait_until_ready(lab_port, env["JUPYTER_TOKEN"], lab)
        if lab.poll() is None:
            print(
                f"\nCourse site:  http://{LOOPBACK}:{site_port}/\n"
                f"JupyterLab:   http://{LOOPBACK}:{lab_port}/lab?token={env['JUPYTER_TOKEN']}\n"
                f"              (your lab copies are in {workspace}; Ctrl-C stops both)",
                flush=True,
            )
        return lab.wait()
    except KeyboardInterrupt:
        stop_jupyterlab(lab)
        return 0
    finally:
        site.shutdown()


def stop_as_ctrl_c(*signals: signal.Signals) -> None:
    """Stop on ``signals`` as on Ctrl-C. Ctrl-C reaches JupyterLab as well; ``kill``, a closed
    terminal or a service manager reach this process alone, which would leave JupyterLab
    running without it, holding its port."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for number in signals:
        signal.signal(number, interrupt)


def has_browser() -> bool:
    """Whether JupyterLab could open a browser here (it logs a warning when it cannot)."""
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def learner_jupyter_env(env: dict[str, str]) -> dict[str, str]:
    """JupyterLab's environment: the learner's settings, a token we can print, no instructor tools."""
    env = dict(env)
    env.setdefault("JUPYTER_TOKEN", secrets.token_hex(24))
    extra = env.get("JUPYTER_CONFIG_PATH")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(LEARNER_JUPYTER_CONFIG), *([extra] if extra else [])])
    return env


def wait_until_ready(port: int, token: str, lab: subprocess.Popen, seconds: float = READY_SECONDS) -> bool:
    """True once JupyterLab answers on ``port``; False if it exited or is slow (its own log then says why)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and lab.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/status?token={token}", timeout=5):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def stop_jupyterlab(lab: subprocess.Popen, timeout: float = 30) -> None:
    """Shut JupyterLab down cleanly, its kernels first.

    Ctrl-C reaches JupyterLab too, which on a terminal only asks "Shut down (y/[n])?" and
    resumes after 5 s. SIGTERM stops it without asking: it shuts its kernels down and
    removes its runtime files. Killed instead, it leaves them behind (``jupyter server
    list`` then shows a server that is gone) and its kernels must notice on their own.
    """
    if lab.poll() is None:
        lab.terminate()
    try:
        lab.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        lab.kill()
        lab.wait()
