"""The learner's side of the authoritative run: untrusted code, in its own sandbox.

    python -m doubleedge.grading.runner cells.json   (stdin/stdout: the checker's pipe)

Runs the lab's setup cell, then the learner's extracted solution cells (each with a
wall-clock limit), then answers the checker's requests, one JSON line each way, in the
protocol of protocol.py: the learner's values as data, calls of the learner's functions on
data, the helpers its lab registered (``Lab.runner_helpers``, named in ``cells.json``) applied
to a learner function, and the learner's defense, kept here after ``build_defense``: its
settings as a DefenseWire, its guards, record access, code check and tool policy called on
arguments rebuilt from data. A request the protocol does not know gets an error, nothing else.

The checker holds the model, the secret, the held-out attacks and every verdict;
this process only ever answers for the learner's own code, so nothing it does can
change how that code is judged. It never sees the held-out attack set, only one
prompt at a time, after its cells have run, and whatever it says is only used as
the learner code's answer. Before each cell it announces ``{"event": "cell"}`` so
that the checker can tell which cell hung or killed the process.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from doubleedge.grading.protocol import (
    AGENT_BUILDERS,
    DEFENSE_FUNCTIONS,
    MAX_TEXT,
    SETUP_SECONDS,
    UNKNOWN_REQUEST,
    AgentDefenseWire,
    DefenseWire,
    Op,
    ProtocolError,
    encode,
    jsonable,
    parse_request,
)
from doubleedge.selfcheck import UNFINISHED, WRITE_VALUES


class Discard(io.TextIOBase):
    """Where the learner's prints go: nowhere (a huge output costs nothing)."""

    def write(self, text: str) -> int:
        return len(text)


class Overtime(BaseException):
    """Raised by the alarm when a cell or a call runs past its time."""


def _alarm(signum, frame):
    raise Overtime()


@contextlib.contextmanager
def time_limit(seconds: float):
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class Channel:
    """Line-delimited JSON on two private file descriptors (not the learner's stdout)."""

    def __init__(self) -> None:
        self.reader = os.fdopen(os.dup(0), "rb", buffering=0)
        self.writer = os.fdopen(os.dup(1), "wb", buffering=0)
        self._lines = io.BufferedReader(self.reader)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        sys.stdin = open(os.devnull)
        sys.stdout = open(os.devnull, "w")

    def send(self, message: dict) -> None:
        self.writer.write(encode(message))

    def receive(self) -> object:
        line = self._lines.readline()
        return json.loads(line) if line else None


def run_cells(cells: dict, channel: Channel) -> tuple[dict, dict[str, str]]:
    namespace: dict = {"__name__": "__learner__"}
    errors: dict[str, str] = {}
    skip = set(cells.get("skip", []))
    seconds = float(cells.get("cell_seconds", 60))
    me = os.getpid()
    for grade_id, source in [("setup", cells["setup"]), *cells["cells"].items()]:
        if grade_id in skip:
            continue
        channel.send({"event": "cell", "id": grade_id})
        limit = max(seconds, SETUP_SECONDS) if grade_id == "setup" else seconds
        try:
            with contextlib.redirect_stdout(Discard()), time_limit(limit):
                exec(compile(source, f"<cell {grade_id}>", "exec"), namespace)
        except Overtime:
            errors[grade_id] = f"the cell did not finish within {limit:g} s"
        except BaseException as exc:  # learner code may raise anything, even SystemExit
            errors[grade_id] = cell_error(exc)
        if os.getpid() != me:  # a process the cell forked: it must not answer for the learner
            os._exit(0)
    return namespace, errors


def cell_error(exc: BaseException) -> str:
    """What a cell's exception means for the learner, with what to change (the runner runs
    each solution cell on its own, after the setup cell)."""
    if type(exc) is NotImplementedError:
        return UNFINISHED
    raised = f"the cell raised {type(exc).__name__}" + (f": {str(exc)[:200]}" if str(exc).strip() else "")
    if isinstance(exc, NameError):
        return f"{raised} ({WRITE_VALUES}; check the spelling too)"
    if isinstance(exc, SyntaxError):
        return f"the cell has a syntax error on line {exc.lineno}: {exc.msg} (fix it and run the cell again)"
    if isinstance(exc, ImportError):
        return f"{raised} (graded cells may import only the standard library and the course's kit)"
    return raised


def answer(message: dict, namespace: dict, state: dict) -> dict:
    """The reply to one request (protocol.REQUESTS); one the protocol does not know fails."""
    try:
        op, request = parse_request(message)
    except ProtocolError:
        return {"ok": False, "error": UNKNOWN_REQUEST}
    return ANSWERS[op](request, namespace, state)


def value(request: dict, namespace: dict, state: dict) -> dict:
    if request["name"] not in namespace:
        return {"ok": False, "error": "missing"}
    return {"ok": True, "value": jsonable(namespace[request["name"]])}


def call(request: dict, namespace: dict, state: dict) -> dict:
    function = namespace.get(request["name"])
    if not callable(function):
        return {"ok": False, "error": "missing"}
    return {"ok": True, "value": jsonable(function(*request["args"]))}


def apply(request: dict, namespace: dict, state: dict) -> dict:
    """A helper the lab registered (``Lab.runner_helpers``: course code that runs the learner's
    function on objects built here from a path or from data). A check of the code itself run here
    runs beside that code, which could change its verdict: such checks read the submitted text, and
    a helper may only add to what the text shows (Lab 02's ``kit_marks``)."""
    function = namespace.get(request["function"])
    if not callable(function):
        return {"ok": False, "error": "missing"}
    where = state.get("helpers", {}).get(request["helper"])
    if not isinstance(where, str):
        return {"ok": False, "error": UNKNOWN_REQUEST}
    module, _, name = where.partition(":")
    helper = getattr(importlib.import_module(module), name)
    return {"ok": True, "value": jsonable(helper(function, *request["args"]))}


def build_defense(request: dict, namespace: dict, state: dict) -> dict:
    from doubleedge.target.bot import Defense

    build = namespace.get("build_defense")
    if not callable(build):
        return {"ok": False, "error": "missing"}
    defense = build(request["secret"])
    if not isinstance(defense, Defense):
        return {"ok": True, "defense": None}
    state["defense"] = defense
    state["sides"] = {"input": defense.input_guards, "output": defense.output_guards,
                      "document": defense.document_guards}  # fmt: skip
    prompt, codes = defense.system_prompt, defense.check_codes
    wire = DefenseWire(
        system_prompt=prompt if isinstance(prompt, str) else None,
        **{f"{side}_guards": _any(guards) for side, guards in state["sides"].items()},
        **{name: callable(getattr(defense, name)) for name in DEFENSE_FUNCTIONS},
        check_codes=codes if isinstance(codes, str) else None,
    )
    return {"ok": True, "defense": wire.to_wire()}


def _any(guards: object) -> bool:
    return bool(list(guards or ()))


def build_agent_defense(request: dict, namespace: dict, state: dict) -> dict:
    from doubleedge.target.agent import AgentDefense, Budget

    function = request["function"]
    build = namespace.get(function) if function in AGENT_BUILDERS else None
    if not callable(build):
        return {"ok": False, "error": "missing"}
    defense = build()
    if not isinstance(defense, AgentDefense) or not callable(defense.policy):
        return {"ok": True, "agent_defense": None}
    state["defense"] = defense
    state["sides"] = {"input": defense.input_guards}
    budget = asdict(defense.budget) if isinstance(defense.budget, Budget) else None
    wire = AgentDefenseWire(tools=jsonable(list(defense.tools)), input_guards=_any(defense.input_guards),
                            budget=budget)  # fmt: skip
    return {"ok": True, "agent_defense": wire.to_wire()}


def scan_side(request: dict, namespace: dict, state: dict) -> dict:
    return scan(state["sides"][request["side"]], request["text"])


def scan(guards, text: str) -> dict:
    """That side's guards over ``text`` the way ``SupportBot.respond`` runs them."""
    for guard in guards:
        verdict = guard.scan(text)
        if not verdict.allowed:
            return {"ok": True, "allowed": False, "text": None, "reason": str(verdict.reason or guard.name)[:200]}
        text = verdict.text
        if not isinstance(text, str):
            return {"ok": False, "error": f"a guard returned {type(text).__name__} text"}
    return {"ok": True, "allowed": True, "text": text[:MAX_TEXT], "reason": None}


def defense_call(request: dict, namespace: dict, state: dict) -> dict:
    """The kept defense's record access, records or code check, on arguments rebuilt from data."""
    if request["function"] not in DEFENSE_FUNCTIONS:
        return {"ok": False, "error": UNKNOWN_REQUEST}
    return {"ok": True, "value": jsonable(getattr(state["defense"], request["function"])(*request["args"]))}


def policy(request: dict, namespace: dict, state: dict) -> dict:
    return decide(state["defense"].policy, request)


def decide(policy, request: dict) -> dict:
    from doubleedge.target.agent import Decision, Shop, ToolCall

    call = ToolCall(str(request["call"]["tool"]), dict(request["call"]["args"]))
    decision = policy(call, str(request["customer"]), Shop.from_data(request["shop"]))
    if not isinstance(decision, Decision):
        return {"ok": False, "error": f"returned {type(decision).__name__}, not a Decision"}
    return {"ok": True, "action": str(decision.action), "reason": str(decision.reason)[:200]}


ANSWERS = {Op.VALUE: value, Op.CALL: call, Op.APPLY: apply, Op.DEFENSE: build_defense,
           Op.AGENT_DEFENSE: build_agent_defense, Op.SCAN: scan_side, Op.DEFENSE_CALL: defense_call,
           Op.POLICY: policy}  # fmt: skip


def serve(channel: Channel, namespace: dict, seconds: float, helpers: dict[str, str]) -> None:
    state: dict = {"helpers": helpers}
    me = os.getpid()
    while (request := channel.receive()) is not None:
        try:
            with time_limit(seconds):
                reply = answer(request, namespace, state)
        except Overtime:
            reply = {"ok": False, "error": f"did not answer within {seconds:g} s", "timeout": True}
        except BaseException as exc:
            reply = {"ok": False, "error": f"raised {type(exc).__name__}"}
        if os.getpid() != me:
            os._exit(0)
        reply["id"] = request.get("id") if isinstance(request, dict) else None
        try:
            channel.send(reply)
        except (TypeError, ValueError):
            channel.send({"id": reply["id"], "ok": False, "error": "answered with something that is not data"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cells = json.loads(Path(argv[0]).read_text("utf-8"))
    channel = Channel()
    namespace, errors = run_cells(cells, channel)
    channel.send({"event": "ready", "errors": errors})
    serve(channel, namespace, float(cells.get("call_seconds", 30)), cells.get("helpers", {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
