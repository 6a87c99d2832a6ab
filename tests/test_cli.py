"""The ``doubleedge`` command as a user runs it."""

import json
import subprocess
import sys
import urllib.request

import pytest


def test_serve_answers_on_loopback_and_stops_cleanly():
    server = subprocess.Popen(
        [sys.executable, "-m", "doubleedge.cli", "serve", "--port", "0", "--defense", "lab01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline()
        url = banner.split("POST ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            url,
            data=json.dumps({"message": "What are your store hours?"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert "9am" in json.load(response)["reply"]
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--defense", "nope"], "invalid choice"),
        (["scan", "--lab", "99"], "no scan for lab '99'"),
        (["grade", "--lab", "99", "x"], "no graded lab '99'"),
    ],
)
def test_bad_arguments_get_a_clear_error(args, message):
    done = subprocess.run([sys.executable, "-m", "doubleedge.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
