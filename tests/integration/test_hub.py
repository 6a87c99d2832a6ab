"""The workshop hub on loopback: an instructor, two learners, Lab 01 released, fetched,
submitted (one good notebook, one hostile), collected and graded in the sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest

from doubleedge.grading.course import Course
from doubleedge.grading.sandbox import Limits, Sandbox, unavailable_for_tests
from doubleedge.labs import get_lab

LAB = get_lab("01")
COURSE_ID = "double-edge"
PASSWORD = "workshop-test-password"


def _proxy_missing() -> str:
    from doubleedge.grading import hub

    try:
        hub.proxy_command()
    except SystemExit as exc:
        return str(exc)
    return ""


REQUIRED = bool(os.environ.get("DOUBLEEDGE_REQUIRE_SANDBOX"))  # CI: fail, never skip
HUB_MISSING = not os.path.exists(os.path.join(os.path.dirname(sys.executable), "jupyterhub"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(HUB_MISSING and not REQUIRED, reason="jupyterhub is not installed"),
    pytest.mark.skipif(bool(_proxy_missing()) and not REQUIRED, reason=_proxy_missing() or "proxy"),
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _call(url: str, token: str, method: str = "GET", body: object = None, timeout: float = 60) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"token {token}", "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def _wait(check, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from doubleedge.grading import hub as hubmod

    course = Course(tmp_path_factory.mktemp("workshop") / "course")
    course.init(["alice", "mallory"])
    course.release(LAB)
    port, hub_port, api_port = _free_ports(3)
    token = hubmod.new_token()
    config = hubmod.write_config(course, instructor="ada", learners=["alice", "mallory"], port=port,
                                 hub_port=hub_port, proxy_api_port=api_port, api_token=token)  # fmt: skip
    process = hubmod.start(config, password=PASSWORD, wait=False)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _call(f"{base}/hub/api/", token), 90, "the hub")
        yield {"course": course, "base": base, "token": token}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except Exception:  # noqa: BLE001
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _start_server(hub, name: str) -> str:
    base, token = hub["base"], hub["token"]
    try:
        _call(f"{base}/hub/api/users/{name}/server", token, "POST", {})
    except urllib.error.HTTPError as exc:
        assert exc.code in (201, 202, 400), exc  # 400: already running
    _wait(lambda: _call(f"{base}/hub/api/users/{name}", token)["servers"].get("", {}).get("ready"), 120,
          f"{name}'s server")  # fmt: skip
    return _call(f"{base}/hub/api/users/{name}/tokens", token, "POST", {"note": "test"})["token"]


def _fetch_edit_submit(hub, name: str, notebook: nbformat.NotebookNode) -> None:
    base = hub["base"]
    user_token = _start_server(hub, name)
    server = f"{base}/user/{name}"
    body = {"course_id": COURSE_ID, "assignment_id": LAB.slug}
    listed = _call(f"{server}/assignments/fetch", user_token, "POST", body)
    assert listed["success"], listed
    path = f"{LAB.slug}/{LAB.slug}.ipynb"
    fetched = _call(f"{server}/api/contents/{path}", user_token)
    assert "raise NotImplementedError()" in json.dumps(fetched["content"])  # the learner copy, no solutions
    _call(
        f"{server}/api/contents/{path}",
        user_token,
        "PUT",
        {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(notebook))},
    )
    submitted = _call(f"{server}/assignments/submit", user_token, "POST", body)
    assert submitted.get("success", True), submitted


def test_workshop_round_trip(hub):
    good = nbformat.read(LAB.source_notebook, as_version=4)
    hostile = nbformat.read(LAB.source_notebook, as_version=4)
    course = hub["course"]
    for cell in hostile.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "scan_answers":
            cell.source = f"print(open({str(course.root / 'gradebook.db')!r}, 'r+b').read(16))\n" + cell.source
    _fetch_edit_submit(hub, "alice", good)
    _fetch_edit_submit(hub, "mallory", hostile)

    alice = urllib.request.Request(f"{hub['base']}/user/alice/formgrader", headers={
        "Authorization": f"token {_start_server(hub, 'alice')}"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError, match="404"):  # learners get no instructor tools
        urllib.request.urlopen(alice, timeout=60)
    instructor_token = _start_server(hub, "ada")  # the instructor's server runs the formgrader on the course
    page = urllib.request.Request(f"{hub['base']}/user/ada/formgrader", headers={
        "Authorization": f"token {instructor_token}"})  # fmt: skip
    with urllib.request.urlopen(page, timeout=60) as response:
        assert response.status == 200 and "formgrader" in response.read().decode().lower()

    assert course.collect(LAB) == ["alice", "mallory"]
    box = Sandbox(Limits(cell_seconds=60, notebook_seconds=240))
    rows = {r.learner: r for r in course.grade(LAB, workers=2, box=box)}
    assert rows["alice"].score == 10.5, rows["alice"].notes  # 0.5 waits for a person
    assert rows["mallory"].score == 9 and any("FileNotFoundError" in n for n in rows["mallory"].notes)
    assert (course.grades / "01.csv").is_file()
