"""``doubleedge start``: what ``make start`` runs.

Builds the course site, makes the learner's copies of the labs in ``workspace/``
(never overwriting work already there), serves the site on loopback and runs
JupyterLab on the workspace until Ctrl-C.

The site is built into ``site/`` in the repository, or into ``$DOUBLEEDGE_SITE_DIR``
(tests build elsewhere so that they never touch the repository).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from doubleedge.grading.pipeline import CourseFolder, tool_env
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

LOOPBACK = "127.0.0.1"


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
    env = tool_env({"NO_MKDOCS_2_WARNING": "1"})
    subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--quiet", "-d", str(dest)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )


def serve_site(folder: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer((LOOPBACK, port), handler)
    threading.Thread(target=server.serve_forever, name="site", daemon=True).start()
    return server


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
    print(f"Course site: http://{LOOPBACK}:{site_port}/", flush=True)
    command = jupyterlab_command(workspace, lab_port) + (["--no-browser"] if no_browser else [])
    print(f"JupyterLab on {workspace} at http://{LOOPBACK}:{lab_port}/ (the link with its token follows)", flush=True)
    lab = subprocess.Popen(command, env=tool_env(None))
    try:
        return lab.wait()
    except KeyboardInterrupt:
        stop_jupyterlab(lab)
        return 0
    finally:
        site.shutdown()


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
