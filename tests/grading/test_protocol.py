"""The runner/checker protocol (grading/protocol.py), end to end: a real runner process, on learner
cells, and the checker's end of the pipe (remote.py). The checker trusts nothing beyond the typed
format: an unknown op, a malformed reply or learner code that takes over the runner fails closed,
with a reason that says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doubleedge.grading import checker, protocol, runner
from doubleedge.grading.checks import Check
from doubleedge.grading.judges import Judging
from doubleedge.grading.protocol import AgentDefenseWire, DefenseWire, Op, ProtocolError
from doubleedge.grading.remote import RemoteError, RemoteNamespace, RunnerBroken, RunnerClient
from doubleedge.target.secrets import COURSE_KEY_ENV

DEFENSE = '''
from doubleedge.target import Defense
from doubleedge.guards import FunctionGuard


def double(x):
    return 2 * x


def build_defense(secret):
    return Defense(
        name="mine", system_prompt="Help customers.", input_guards=[FunctionGuard(lambda t: "attack" in t)],
        record_access=lambda customer, record: 1 if record == "R-1" else record == customer,  # 1 is not True
        records_for=lambda customer, message, store: [row for row in store if row["owner"] == customer],
        check_code=lambda typed, code: typed == code,
    )
'''


@pytest.fixture
def start(tmp_path):
    """``start(cells)``: a runner on those cells (and the helpers a lab would register), and the
    checker's client, past the runner's ``ready``."""
    processes = []

    def started(cells: dict[str, str], helpers: dict[str, str] | None = None) -> RunnerClient:
        spec = {"setup": "", "cells": cells, "cell_seconds": 30, "call_seconds": 5, "helpers": helpers or {}}
        (tmp_path / "cells.json").write_text(json.dumps(spec), "utf-8")
        env = {k: v for k, v in os.environ.items() if k != COURSE_KEY_ENV}
        env["PYTHONPATH"] = str(Path(protocol.__file__).parents[2])  # this checkout's kit, from any folder
        process = subprocess.Popen([sys.executable, "-m", "doubleedge.grading.runner", str(tmp_path / "cells.json")],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tmp_path, env=env)  # fmt: skip
        processes.append(process)
        client = RunnerClient(process.stdout.fileno(), process.stdin.fileno(), call_seconds=5)
        while client.event(60).get("event") != "ready":
            pass
        return client

    yield started
    for process in processes:
        process.kill()
        process.wait()


def test_a_defense_crosses_as_its_wire_and_its_code_is_asked_by_op(start):
    client = start({"hardening": DEFENSE})
    defense = RemoteNamespace(client)["build_defense"]("SECRET")
    assert defense.system_prompt == "Help customers." and len(defense.input_guards) == 1
    assert defense.output_guards == [] and defense.document_guards == []
    assert defense.input_guards[0].scan("hello").allowed and not defense.input_guards[0].scan("an attack").allowed
    assert defense.record_access("C-1", "C-1") is True
    assert defense.record_access("C-1", "R-1") is False  # only an explicit True grants
    store = [{"owner": "C-1", "id": "a"}, {"owner": "C-2", "id": "b"}]
    assert defense.records_for("C-1", "my orders", store) == [{"owner": "C-1", "id": "a"}]
    assert defense.check_code("SECRET", "SECRET") is True and defense.check_code("SECRE", "SECRET") is False
    assert RemoteNamespace(client)["double"](21) == 42


def test_defense_functions_fail_closed_when_the_learner_code_fails(start):
    broken = DEFENSE.replace('"Help customers.", ', '"Help customers.", records_for=lambda *a: 1 / 0, ')
    broken = broken.replace("        records_for=lambda customer, message, store: [row for row in store "
                            'if row["owner"] == customer],\n', "")  # fmt: skip
    broken = broken.replace("check_code=lambda typed, code: typed == code", "check_code=lambda typed, code: 1 / 0")
    defense = RemoteNamespace(start({"hardening": broken}))["build_defense"]("SECRET")
    assert defense.records_for("C-1", "my orders", [{"owner": "C-1"}]) == []
    assert defense.check_code("SECRET", "SECRET") is False


def test_helpers_are_the_ones_the_lab_registered(start):
    client = start({"hardening": DEFENSE}, helpers={"call_it": "operator:call"})
    ns = RemoteNamespace(client)
    assert ns.apply("call_it", "double", 4) == 8
    with pytest.raises(RemoteError, match="not a request of the protocol"):
        ns.apply("outcome_of", "double", 4)  # a helper this lab did not register
    assert not client.broken


def test_an_unknown_op_fails_before_anything_is_sent(start):
    client = start({"hardening": DEFENSE})
    with pytest.raises(ProtocolError, match="unknown op 'record_access'"):
        client.request("record_access", customer="C-1", record="C-1")  # the old op, folded into defense_call
    with pytest.raises(ProtocolError, match="has no 'args'"):
        client.request(Op.DEFENSE_CALL, function="check_code")
    with pytest.raises(ProtocolError, match="'text' is int"):
        client.request(Op.SCAN, side="input", text=5)
    assert not client.broken and client.request(Op.VALUE, name="double")["value"] == {"__type__": "function"}


def test_the_runner_answers_an_unknown_or_malformed_request_with_an_error_only():
    for message in ({"op": "exec", "code": "1"}, {"op": "value"}, {"op": "call", "name": "f", "args": "x"}, [1], None,
                    {"op": "defense_call", "function": "__class__", "args": []}):  # fmt: skip
        reply = runner.answer(message, {"f": print}, {"defense": object()})
        assert reply == {"ok": False, "error": protocol.UNKNOWN_REQUEST}, message


# Learner code runs in the runner's process, so it can take it over: these cells rewrite its answers.
TAKEOVER = DEFENSE + '''
import __main__ as _runner

_real = dict(_runner.ANSWERS)


def _forged(request, namespace, state):
    try:
        reply = _real[{op!r}](request, namespace, state)
    except Exception:  # (an op this defense cannot answer: the forgery is the whole reply)
        reply = {{"ok": True}}
    return {{**reply, **{patch}}}


_runner.ANSWERS[{op!r}] = _forged
'''


@pytest.mark.parametrize(
    "op, patch, reason",
    [
        ("scan", {"allowed": "yes"}, "'allowed' is str"),
        ("scan", {"text": None}, "a guard returned no text"),  # allowed, yet no text: not a verdict
        ("defense", {"defense": {"system_prompt": "Hi"}}, "has no 'input_guards'"),
        ("defense", {"defense": [1]}, "'defense' is list"),
        ("defense", {"ok": "yes"}, "neither an answer nor an error"),
        ("defense_call", {"value": True, "ok": True, "extra": 1}, ""),  # extra fields are ignored; value is data
        ("policy", {"action": "allow", "reason": 5}, "'reason' is int"),
    ],
)
def test_a_reply_that_breaks_the_protocol_fails_closed(start, op, patch, reason):
    client = start({"hardening": TAKEOVER.format(op=op, patch=patch)})
    ns = RemoteNamespace(client)
    if op == "policy":
        with pytest.raises(RunnerBroken, match=reason):
            client.request(Op.POLICY, call={"tool": "lookup_order", "args": {}}, customer="C-1", shop={})
        return
    if op == "defense_call":  # a reply that keeps to the format: the checker still reads only value
        assert ns["build_defense"]("SECRET").check_code("x", "SECRET") is True
        return
    if op == "scan" and "text" in patch:
        with pytest.raises(RemoteError, match=reason):
            ns["build_defense"]("SECRET").input_guards[0].scan("hello")
        return
    with pytest.raises(RunnerBroken, match=f"broke the grading protocol .*{reason}"):
        defense = ns["build_defense"]("SECRET")
        defense.input_guards[0].scan("hello")
    with pytest.raises(RunnerBroken, match="broke the grading protocol"):  # and nothing after it is trusted
        ns["double"](1)


def test_a_broken_protocol_fails_every_later_test_with_its_reason(start, tmp_path):
    client = start({"hardening": TAKEOVER.format(op="scan", patch={"allowed": 1})})
    judging = Judging(client, {}, "learner", None, tmp_path / "heldout.jsonl", tmp_path)
    judging.attempt("test_guard", "hardening", lambda: Check(judging.ns["build_defense"]("S").input_guards[0]
                                                              .scan("attack").allowed is False))  # fmt: skip
    judging.attempt("test_double", "hardening", lambda: Check(judging.ns["double"](2) == 4))
    for test in ("test_guard", "test_double"):
        assert not judging.tests[test] and "broke the grading protocol (scan)" in judging.tests[test].reason


def test_a_reply_that_is_not_json_breaks_the_runner():
    read_fd, write_fd = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.write(write_fd, b"not json\n")
    client = RunnerClient(read_fd, devnull, call_seconds=1)
    try:
        with pytest.raises(RunnerBroken, match="not JSON"):
            client.request(Op.VALUE, name="x")
        with pytest.raises(RunnerBroken, match="not JSON"):
            client.request(Op.VALUE, name="y")  # fails closed from then on
    finally:
        for fd in (read_fd, write_fd, devnull):
            os.close(fd)


def test_wires_check_every_field():
    wire = DefenseWire("p", True, False, False, True, False, True, None)
    assert DefenseWire.from_wire(json.loads(json.dumps(wire.to_wire()))) == wire
    for bad in ({**wire.to_wire(), "input_guards": 1}, {**wire.to_wire(), "check_codes": 3}, {"system_prompt": "p"}):
        with pytest.raises(ProtocolError):
            DefenseWire.from_wire(bad)
    agent = AgentDefenseWire(["lookup_order"], False, None)
    assert AgentDefenseWire.from_wire(agent.to_wire()) == agent
    with pytest.raises(ProtocolError, match="'budget' is list"):
        AgentDefenseWire.from_wire({**agent.to_wire(), "budget": []})


def test_every_op_has_a_request_a_reply_and_an_answer():
    assert set(protocol.REQUESTS) == set(protocol.REPLIES) == set(runner.ANSWERS) == set(Op)


def test_the_runner_imports_no_lab_and_the_checker_no_runner():
    for module, forbidden in (("runner", ("doubleedge.grading.lab", "doubleedge.supplychain", "remote")),
                              ("remote", ("runner",)), ("checker", ("runner",))):  # fmt: skip
        source = (Path(protocol.__file__).parent / f"{module}.py").read_text("utf-8")
        imports = [line for line in source.splitlines() if line.lstrip().startswith(("import ", "from "))]
        assert not [line for line in imports if any(name in line for name in forbidden)], module


class Events:
    """The runner's messages before its first request, as the checker reads them."""

    def __init__(self, *messages: dict) -> None:
        self.messages = list(messages)

    def event(self, timeout: float) -> dict:
        return self.messages.pop(0)


def test_the_runners_events_are_typed_too():
    ready = Events({"event": "cell", "id": "setup"}, {"event": "ready", "errors": {"hardening": "raised KeyError"}})
    assert checker.follow_cells(ready, 5) == {"hardening": "raised KeyError"}
    for bad in ({"event": "ready", "errors": ["x"]}, {"event": "graded", "score": 10}, {"event": "cell", "id": 3}):
        result = checker.follow_cells(Events({"event": "cell", "id": "hardening"}, bad), 5)
        assert result["incomplete"] == "hardening" and "broke the grading protocol" in result["why"], bad
