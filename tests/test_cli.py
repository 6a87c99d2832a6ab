"""The ``doubleedge`` command as a user runs it."""

import json
import subprocess
import sys
import urllib.request

import pytest


@pytest.mark.parametrize(
    "args, message, expected",
    [
        (["--defense", "lab01"], "What are your store hours?", "9am"),
        (["--lab", "04", "--defense", "lab04"], "What are your store hours?", "9am"),  # the web chat
        (["--lab", "05", "--defense", "lab05"], "Where is my order 1002?", "helmet"),  # the agent, with its tools
        (["--lab", "09", "--defense", "lab09"], "Can I change the dates of my trip?", "change fee"),  # Wren
    ],
)
def test_serve_answers_on_loopback_and_stops_cleanly(args, message, expected):
    server = subprocess.Popen(
        [sys.executable, "-m", "doubleedge.cli", "serve", "--port", "0", *args],
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
            data=json.dumps({"message": message}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert expected in json.load(response)["reply"]
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--defense", "nope"], "invalid choice"),
        (["scan", "--lab", "99"], "no scan for lab '99'"),
        (["grade", "--lab", "99", "x"], "no graded lab '99'"),
        (["scan", "--lab", "06"], "Lab 06's target is model files, not a chat"),
        (["scan", "--lab", "07"], "Lab 07's target is the model you train in the notebook"),
        (["scan", "--lab", "04", "--defense", "lab01"], "--defense is one of none, lab04"),
        (["scan", "--lab", "01", "--defense", "lab05"], "--defense lab05 hardens the agent: add --lab 05"),
        (["scan", "--lab", "04", "--url", "http://127.0.0.1:9/chat", "--workdir", "w"], "drop --url"),
        (["serve", "--lab", "07"], "not a chat"),
        (["serve", "--defense", "lab04"], "add --lab 04"),
    ],
)
def test_bad_arguments_get_a_clear_error(args, message):
    done = subprocess.run([sys.executable, "-m", "doubleedge.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
