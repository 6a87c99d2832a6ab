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
        if "conversations: POST " in banner:  # the support bots keep conversations
            sessions = banner.split("conversations: POST ")[1].split(")")[0]
            with urllib.request.urlopen(urllib.request.Request(sessions, data=b"{}"), timeout=10) as response:
                assert response.status == 201 and json.load(response)["session"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_support_bot_offers_conversations_and_the_agent_does_not():
    for args, offered in ((["--defense", "none"], True), (["--lab", "05", "--defense", "lab05"], False)):
        server = subprocess.Popen(
            [sys.executable, "-m", "doubleedge.cli", "serve", "--port", "0", *args], stdout=subprocess.PIPE, text=True
        )
        try:
            assert ("conversations: POST http://127.0.0.1:" in server.stdout.readline()) is offered
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
        (["figures", "--set", "nope"], "invalid choice: 'nope'"),
        (["figures", "--model", "smollm2"], "use it with --set fidelity alone"),
    ],
)
def test_bad_arguments_get_a_clear_error(args, message):
    done = subprocess.run([sys.executable, "-m", "doubleedge.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_every_subcommand_help_opens_with_a_plain_one_line_description():
    from doubleedge.cli import parser

    top = parser()
    assert "``" not in top.format_help() and ":ref:" not in top.format_help()  # no reStructuredText
    commands = next(a for a in top._actions if a.dest == "command").choices
    assert {"serve", "scan", "grade", "progress", "start"} <= set(commands)
    for name, command in commands.items():
        description = command.description or ""
        assert description and "\n" not in description.strip() and "``" not in description, name
        assert description in command.format_help(), name


def test_scan_without_workdir_says_where_the_report_went_and_is_quiet_off_a_terminal(tmp_path, monkeypatch, capsys):
    from doubleedge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["scan", "--lab", "01", "--defense", "lab01"]) == 0
    out, err = capsys.readouterr()
    report = tmp_path / "scans" / "lab01-lab01" / "reports" / "scan.report.jsonl"
    assert report.is_file() and f"report: {report}" in out
    assert "garak: probe" not in out + err  # progress only on a terminal


def test_scans_report_each_probe_as_garak_finishes_it(tmp_path):
    from doubleedge.defenses import get_defense
    from doubleedge.models import ReferenceModel
    from doubleedge.scan import scan_bot, scan_for_lab
    from doubleedge.scan.runner import show_progress
    from doubleedge.target import SupportBot

    lines: list[str] = []
    show_progress(lines.append)
    try:
        bot = SupportBot(
            ReferenceModel(), secret="DE-FAKE-0000-0000", defense=get_defense("lab01", "DE-FAKE-0000-0000")
        )
        report = scan_bot(bot, scan_for_lab("01"), tmp_path)
    finally:
        show_progress(None)
    probes = [line for line in lines if line.startswith("garak: probe ")]
    assert lines[0].startswith("garak: scanning with ")
    assert len({r.probe for r in report.results}) >= 3
    assert sorted(line.split("done: ")[1] for line in probes) == sorted({r.probe for r in report.results})
