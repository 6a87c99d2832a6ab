"""Load on the workshop hub: N learners at once log in, start a server, fetch Lab 01, run its first cells, submit.

Run from the repository root, as root (so that each learner gets their own account, as in
a class): ``.venv/bin/python bench/hub_load.py --learners 4``. It starts the real hub
(``doubleedge hub``'s own configuration: JupyterHub, configurable-http-proxy, one Unix
account per learner, the default limits) on loopback in a fresh course folder, releases
Lab 01, then drives every learner at the same time through the hub, as a browser would:

1. the login form (a wrong password would be refused), then a token from the hub's API;
2. their server: the time from the request until the hub reports it ready (spawn time);
3. Lab 01 through nbgrader's exchange (the *Assignments* tab's fetch);
4. the first ``--cells`` code cells of their copy in a new kernel, over Jupyter's
   websocket protocol: the time from each request to its reply (cell latency);
5. submit through the exchange.

While a learner works, their server and everything it started (the kernel) are sampled
for resident memory; the peak is that learner's. At the end the instructor's collect must
find every learner's submission. Figures: p50/p95 of spawn time and cell latency, peak
RSS per learner server, in bench/results/hub_load.json. A learner who fails stops the run
with the reason; a submission the instructor cannot collect makes it exit 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import machine

from doubleedge.grading import hub as hubmod
from doubleedge.grading.course import COURSE_ID, Course
from doubleedge.labs import get_lab

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "hub_load.json"
LAB = get_lab("01")
TIMEOUT = 300  # seconds for one server to start or one cell to run, on a loaded machine


class Learner:
    """One simulated learner, driving the hub over HTTP and websockets only."""

    def __init__(self, base: str, name: str, password: str):
        self.base, self.name, self.password = base, name, password
        self.server = f"{base}/user/{name}"
        self.token = ""

    def call(self, method: str, url: str, body: object = None) -> object:
        response = requests.request(method, url, json=body, timeout=TIMEOUT,
                                    headers={"Authorization": f"token {self.token}"})  # fmt: skip
        if response.status_code >= 400:
            raise RuntimeError(f"{self.name}: {method} {url}: {response.status_code} {response.text[:300]}")
        return response.json() if response.text.strip() else None

    def log_in(self) -> None:
        """The login form with the _xsrf cookie JupyterHub sets, then a token with the session's cookie."""
        session = requests.Session()
        session.get(f"{self.base}/hub/login", timeout=TIMEOUT)
        xsrf = session.cookies.get("_xsrf", "")
        form = {"username": self.name, "password": self.password, "_xsrf": xsrf}
        answer = session.post(f"{self.base}/hub/login", data=form, allow_redirects=False, timeout=TIMEOUT)
        if answer.status_code != 302:
            raise RuntimeError(f"{self.name}: login refused ({answer.status_code})")
        # Logged in, the hub's pages carry the XSRF token its API wants with the session's cookie.
        home = session.get(f"{self.base}/hub/home", timeout=TIMEOUT).text
        page_xsrf = re.search(r'xsrf_token: "([^"]+)"', home)
        if not page_xsrf:
            raise RuntimeError(f"{self.name}: no XSRF token on the hub's home page")
        made = session.post(f"{self.base}/hub/api/users/{self.name}/tokens", json={"note": "hub_load"},
                            headers={"X-XSRFToken": page_xsrf.group(1)}, timeout=TIMEOUT)  # fmt: skip
        if made.status_code != 201:
            raise RuntimeError(f"{self.name}: no token ({made.status_code} {made.text[:300]})")
        self.token = made.json()["token"]

    def start_server(self) -> float:
        began = time.monotonic()
        self.call("POST", f"{self.base}/hub/api/users/{self.name}/server", {})
        while not self.call("GET", f"{self.base}/hub/api/users/{self.name}")["servers"].get("", {}).get("ready"):
            if time.monotonic() - began > TIMEOUT:
                raise RuntimeError(f"{self.name}: server not ready after {TIMEOUT} s")
            time.sleep(0.2)
        return time.monotonic() - began

    def exchange(self, action: str) -> None:
        done = self.call("POST", f"{self.server}/assignments/{action}",
                         {"course_id": COURSE_ID, "assignment_id": LAB.slug})  # fmt: skip
        if not done.get("success"):
            raise RuntimeError(f"{self.name}: {action} failed: {done.get('value') or done}")

    def first_cells(self, count: int) -> list[str]:
        notebook = self.call("GET", f"{self.server}/api/contents/{LAB.slug}/{LAB.slug}.ipynb")["content"]
        cells = [c["source"] for c in notebook["cells"] if c["cell_type"] == "code"][:count]
        if any("NotImplementedError" in source for source in cells):
            raise SystemExit(f"--cells {count} reaches a cell the learner has to write; take fewer")
        return cells

    def run_cells(self, cells: list[str]) -> list[float]:
        """Each cell in a fresh kernel of the learner's server: seconds from request to reply."""
        kernel = self.call("POST", f"{self.server}/api/kernels", {"name": "python3"})
        url = self.server.replace("http://", "ws://", 1) + f"/api/kernels/{kernel['id']}/channels"
        ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=TIMEOUT)
        try:
            return [self.execute(ws, code) for code in cells]
        finally:
            ws.close()
            self.call("DELETE", f"{self.server}/api/kernels/{kernel['id']}")

    def execute(self, ws, code: str) -> float:
        msg_id = secrets.token_hex(8)
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": secrets.token_hex(8),
                  "username": self.name, "version": "5.3"}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        began = time.monotonic()
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                            "channel": "shell"}))  # fmt: skip
        while True:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "error":
                raise RuntimeError(f"{self.name}: a cell failed: {message['content']['ename']}: "
                                   f"{message['content']['evalue']}")  # fmt: skip
            if message["msg_type"] == "execute_reply":
                return time.monotonic() - began


def server_pid(name: str) -> int:
    """The process of ``name``'s JupyterLab server (root reads every process's environment)."""
    marker = f"JUPYTERHUB_USER={name}\0".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"jupyterhub.singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes():
                if marker in Path(f"/proc/{pid}/environ").read_bytes():
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no server process for {name}")


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it."""
    parents: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(pid)] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(x.split()[1]) * 1024 for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    return total


class PeakMemory(threading.Thread):
    """Samples a server's tree every quarter second until stopped; ``peak`` in bytes."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.done.wait(0.25)

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.peak = max(self.peak, tree_rss(self.pid))
        return self.peak


def drive(base: str, name: str, password: str, cells: int) -> dict:
    learner = Learner(base, name, password)
    learner.log_in()
    spawn = learner.start_server()
    sampler = PeakMemory(server_pid(name))
    sampler.start()
    try:
        learner.exchange("fetch")
        latencies = learner.run_cells(learner.first_cells(cells))
        learner.exchange("submit")
    finally:
        peak = sampler.stop()
    return {"learner": name, "spawn_seconds": spawn, "cell_seconds": latencies, "peak_rss_mb": peak / 2**20}


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p percent of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values), "n": len(values)}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for_hub(base: str, token: str, process) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the hub exited with {process.returncode}")
        try:
            if requests.get(f"{base}/hub/api/", headers={"Authorization": f"token {token}"}, timeout=10).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise SystemExit("the hub did not answer")


def run_load(learners: int, cells: int) -> dict:
    """A fresh course and hub, ``learners`` learners at once; the figures."""
    names = [f"load{index:02d}" for index in range(1, learners + 1)]
    folder = Path(tempfile.mkdtemp(prefix="doubleedge-hub-load-"))
    folder.chmod(0o711)  # learners' accounts pass through to their homes
    password, token = secrets.token_hex(12), hubmod.new_token()
    saved_key = os.environ.get("DOUBLEEDGE_COURSE_KEY")
    os.environ["DOUBLEEDGE_COURSE_KEY"] = secrets.token_hex(16)  # a private course key, as in a class
    process = None
    try:
        course = Course(folder / "course")
        course.init(names)
        course.release(LAB)
        port, hub_port, api_port = free_ports(3)
        config = hubmod.write_config(course, instructor="instructor", learners=names, port=port, hub_port=hub_port,
                                     proxy_api_port=api_port, api_token=token,
                                     python=hubmod.shared_python(folder) if os.geteuid() == 0 else None)  # fmt: skip
        process = hubmod.start(config, password=password, wait=False)
        base = f"http://127.0.0.1:{port}"
        wait_for_hub(base, token, process)
        with ThreadPoolExecutor(learners) as pool:
            rows = list(pool.map(lambda name: drive(base, name, password, cells), names))
        submitted = course.collect(LAB)
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        if saved_key is None:
            os.environ.pop("DOUBLEEDGE_COURSE_KEY", None)
        else:
            os.environ["DOUBLEEDGE_COURSE_KEY"] = saved_key
        if os.geteuid() == 0:
            hubmod.remove_accounts(names)
            hubmod.remove_cpu_groups(names)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "learners": learners,
        "cells_per_learner": cells,
        "own_accounts": os.geteuid() == 0,
        "limits": hubmod.DEFAULT_LIMITS,
        "spawn_seconds": summary([r["spawn_seconds"] for r in rows]),
        "cell_seconds": summary([s for r in rows for s in r["cell_seconds"]]),
        "peak_rss_mb_per_server": summary([r["peak_rss_mb"] for r in rows]),
        "per_learner": rows,
        "submitted": submitted,
        "expected": names,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=4, help="learners at the same time (default 4)")
    parser.add_argument("--cells", type=int, default=3, help="first code cells of Lab 01 each learner runs")
    parser.add_argument("--out", default=str(RESULTS), help=f"where the figures go (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.learners < 1 or args.cells < 1:
        parser.error("--learners and --cells must be at least 1")
    figures = run_load(args.learners, args.cells)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1), "utf-8")
    for what in ("spawn_seconds", "cell_seconds", "peak_rss_mb_per_server"):
        f = figures[what]
        print(f"{what:24} p50 {f['p50']:8.2f}  p95 {f['p95']:8.2f}  max {f['max']:8.2f}  (n={f['n']})")
    print(f"submissions collected: {len(figures['submitted'])}/{args.learners}; figures in {out}")
    return 0 if figures["submitted"] == figures["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
