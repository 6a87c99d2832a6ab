"""``doubleedge start`` (what ``make start`` runs) in a real browser: JupyterLab runs Lab 01.

Starts the command on free loopback ports with a temporary workspace, waits for
JupyterLab, opens the learner copy of Lab 01 in Debian's ``chromium`` (driven by PyPI
``playwright``), runs the setup cell and the first cell that talks to the bot through
JupyterLab's own interface (click into the cell, Shift+Enter) on a real kernel, and reads Bell's
answer in the output area. With the exercises answered (the lab's solution), it runs the cells
that scan, harden, re-scan and draw the lab's chart, and takes screenshots of the page and the
chart for a person to look at (under the test's tmp folder, or DOUBLEEDGE_SCREENSHOTS); no news
pop-up and no instructor tools (Formgrader, Create Assignment) may show. Then it stops the
command's process group as Ctrl-C in a terminal does, and checks that JupyterLab shut down
cleanly, its kernel with it.
"""

from __future__ import annotations

import json
import os
import pty
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from headless import ARGS, CHROMIUM, screenshot, sync_api

from doubleedge.labs import get_lab

pytestmark = pytest.mark.integration

LAB = "01-prompt-injection"
# Lab 01's cells: 0 title, 1 setup, 2 text, 3 the first cell that asks Bell three questions.
SETUP_CELL, BOT_CELL = 1, 3
BELL_ANSWERS = "9am to 6pm"  # Bell's answer to "What are your store hours?"
STARTUP_SECONDS = 600  # lab copies (nbgrader) and the site build come first


# Code cells that lead to the lab's chart, each found by its first lines (the editor draws only
# the lines in view, so a line further down a long cell is not on the page): the baseline scan, the
# learner's detector and the hardening that uses it (both filled in from the lab's solution), the
# hardened bot (by its second line: a test cell also builds a `_hardened = SupportBot(`), the
# re-scan with its chart.
CHART_STEPS = ("baseline = scan_bot(", "import unicodedata", "HARDENED_SYSTEM_PROMPT = ", "_attacks = [MY_INJECTION]",
               "after = scan_bot(")  # fmt: skip


def fill_in_the_hardening(path: Path) -> None:
    """Answer the learner copy's exercises with the lab's solution (what a learner has typed by Part 4)."""
    solutions = {
        c.metadata["nbgrader"]["grade_id"]: "\n".join(
            line for line in c.source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line
        )
        for c in nbformat.read(get_lab("01").source_notebook, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solutions:
            cell.source = solutions[grade_id]
    nbformat.write(notebook, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"doubleedge start exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} did not answer within {seconds:g} s:\n{log.read_text()[-3000:]}")


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (kernels name their connection file)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for_idle_kernel(port: int, token: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    """Until the notebook's session has a kernel that is idle (started, and not busy)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?token={token}", timeout=10) as response:
            sessions = json.load(response)
        if any(s.get("kernel", {}).get("execution_state") == "idle" for s in sessions):
            return
        time.sleep(1)
    pytest.fail(f"no idle kernel within {seconds:g} s:\n{log.read_text()[-3000:]}")


def run_cell(cell, page):  # playwright locators
    """Run one cell the way a learner does: click into it, Shift+Enter; its first output."""
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    return cell.locator(".jp-OutputArea-output").first


def run_to_the_end(cell, page, timeout_ms: float) -> None:  # playwright objects
    """Run one cell as a learner does and wait until its prompt shows an execution count ("[7]:")."""
    # The cell is held by its node, not found again: once the editor scrolls, a long cell's first
    # lines (which found it) leave the page; the prompt's text content does not need it drawn.
    node = cell.element_handle()
    node.query_selector(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=node.query_selector(".jp-InputPrompt"),
                           timeout=timeout_ms)  # fmt: skip


@pytest.fixture
def started(tmp_path):
    """``doubleedge start`` in its own process group, with every Jupyter folder in tmp_path."""
    token = secrets.token_hex(16)
    ports = {"site": free_port(), "lab": free_port()}
    env = dict(os.environ, JUPYTER_TOKEN=token, DOUBLEEDGE_SITE_DIR=str(tmp_path / "site"),
               NO_MKDOCS_2_WARNING="1", PYTHONUNBUFFERED="1")  # fmt: skip
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):  # fmt: skip
        env[name] = str(tmp_path / name.lower())
    log = tmp_path / "start.log"
    # A terminal on stdin, as for `make start`: JupyterLab then answers Ctrl-C with a prompt.
    terminal, terminal_side = pty.openpty()
    command = [str(Path(sys.executable).with_name("doubleedge")), "start", "--site-port", str(ports["site"]),
               "--lab-port", str(ports["lab"]), "--workspace", str(tmp_path / "workspace"), "--no-browser"]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdin=terminal_side, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{ports['lab']}/api/status?token={token}", process, log, STARTUP_SECONDS)
        yield process, ports, token, tmp_path, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(terminal)
        os.close(terminal_side)


def drop_connection_mid_download(port: int) -> None:
    """What a browser does when a tab closes during a load: ask for a page, then reset the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        sock.sendall(b"GET /search/search_index.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.recv(1)


def test_start_prints_only_the_two_links_and_no_alarm(started):
    process, ports, token, tmp_path, log = started
    deadline = time.monotonic() + 60
    while "JupyterLab:" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    for _ in range(5):
        drop_connection_mid_download(ports["site"])
    time.sleep(2)
    text = log.read_text()
    tail = [line for line in text.splitlines() if line.strip()][-3:]
    assert tail[0] == f"Course site:  http://127.0.0.1:{ports['site']}/", text
    assert tail[1] == f"JupyterLab:   http://127.0.0.1:{ports['lab']}/lab?token={token}", text
    for alarm in ("No nbgrader_config.py", "No web browser found", "Traceback", "Error", "WARNING", "[W "):
        assert alarm not in text, (alarm, text)
    # `kill` (a service manager, a closed terminal) reaches `start` alone, not JupyterLab: it stops both.
    jupyterlab = f"--ServerApp.port={ports['lab']}"  # in JupyterLab's command line
    assert processes_mentioning(jupyterlab), "JupyterLab should be running"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    deadline = time.monotonic() + 30
    while processes_mentioning(jupyterlab) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(jupyterlab) == [], "JupyterLab must stop with the start command"


def test_jupyterlab_from_the_start_command_runs_lab_01_and_stops_cleanly(started):
    process, ports, token, tmp_path, log = started
    assert (tmp_path / "workspace" / LAB / f"{LAB}.ipynb").is_file(), "start makes the learner copies"
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['site']}/{LAB}/", timeout=10) as response:
        assert response.status == 200, "start serves the course site too"
    with pytest.raises(urllib.error.HTTPError, match="404"):  # the learner's server has no formgrader
        urllib.request.urlopen(f"http://127.0.0.1:{ports['lab']}/formgrader?token={token}", timeout=30)

    fill_in_the_hardening(tmp_path / "workspace" / LAB / f"{LAB}.ipynb")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{ports['lab']}/lab/tree/{LAB}/{LAB}.ipynb?token={token}")
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        cells.nth(BOT_CELL).wait_for(timeout=120_000)
        assert "Setup: run this first" in cells.nth(SETUP_CELL).inner_text()
        # Keys typed before the kernel is up can be lost on a busy machine: wait until it is idle.
        wait_for_idle_kernel(ports["lab"], token, process, log)
        setup_out = run_cell(cells.nth(SETUP_CELL), page)
        setup_out.wait_for(timeout=180_000)
        answer = run_cell(cells.nth(BOT_CELL), page)
        answer.wait_for(timeout=120_000)
        page.wait_for_function(
            "([i, text]) => document.querySelectorAll('.jp-Notebook .jp-Cell')[i].innerText.includes(text)",
            arg=[BOT_CELL, BELL_ANSWERS],
            timeout=60_000,
        )
        assert "Bell is ready" in setup_out.first.inner_text()
        reply = answer.first.inner_text()
        assert "> What are your store hours?" in reply and BELL_ANSWERS in reply
        assert "Error" not in cells.nth(BOT_CELL).inner_text()
        # The lab's chart, as the learner sees it after scanning, hardening and re-scanning.
        code_cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell")
        for text in CHART_STEPS:
            run_to_the_end(code_cells.filter(has_text=text).first, page, 300_000)
        chart_cell = code_cells.filter(has_text=CHART_STEPS[-1]).first
        chart = chart_cell.locator(".jp-OutputArea-output img").first
        chart.wait_for(timeout=300_000)
        chart.scroll_into_view_if_needed()
        assert "Error" not in chart_cell.inner_text()
        assert chart.evaluate("img => img.naturalWidth") > 300
        # JupyterLab asks about news a few seconds after it opens; the learner's copy must not.
        time.sleep(6)
        shots = tmp_path / "screenshots"  # for a person to look at: legends over bars, pop-ups over the chart
        screenshot(page, "jupyterlab-lab01", shots)
        screenshot(chart, "jupyterlab-lab01-chart", shots)
        assert page.locator(".Toastify__toast").all_inner_texts() == []  # no news pop-up
        assert page.locator("[title*='Create Assignment' i], [title*='Create assignment' i]").count() == 0
        assert page.get_by_text("Create Assignment", exact=False).count() == 0  # no such panel either
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        items = [i for i in page.locator(".lm-Menu .lm-Menu-itemLabel").all_inner_texts() if i.strip()]
        screenshot(page, "jupyterlab-nbgrader-menu", shots)
        assert items == ["Assignment List"], items  # no Formgrader, Course List or Create assignment
        page.keyboard.press("Escape")
        browser.close()

    runtime = str(tmp_path / "jupyter_runtime_dir")
    assert processes_mentioning(runtime), "the kernel should be running"
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
    deadline = time.monotonic() + 30
    while processes_mentioning(runtime) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(runtime) == [], "the kernel must stop with JupyterLab"
    # A clean shutdown removes the server's and the kernel's files; a killed server leaves them.
    assert sorted(p.name for p in Path(runtime).glob("*.json")) == []
