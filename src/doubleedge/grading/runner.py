"""The learner's side of the authoritative run: untrusted code, in its own sandbox.

    python -m doubleedge.grading.runner cells.json   (stdin/stdout: the checker's pipe)

Runs the lab's setup cell, then the learner's extracted solution cells (each with a
wall-clock limit), then answers the checker's questions, one JSON line each way:

* ``{"op": "value", "name": N}``: the value of a name, as JSON (``{"__type__": ...}``
  when it is not plain data);
* ``{"op": "call", "name": F, "args": [...]}``: ``F(*args)``, as JSON;
* ``{"op": "apply", "helper": H, "function": F, "args": [...]}``: the course helper
  ``H`` (one of :data:`HELPERS`) applied to the learner's ``F``, for learner functions
  that take objects which cannot cross the pipe (a model, a file's tensors, Lab 08's dataclasses);
* ``{"op": "defense", "secret": S}``: calls ``build_defense(S)`` and keeps the result;
  answers with its system prompt and settings, so that the checker builds the bot itself;
* ``{"op": "agent_defense", "function": ...}``: the same for ``build_agent_defense()`` (or Lab 05's
  ``build_budgeted_defense()``), its budget as data;
* ``{"op": "scan", "side": "input" | "output" | "document", "text": T}``: runs that
  side's guards of the kept defense over ``T`` the way ``SupportBot.respond`` does;
* ``{"op": "record_access", "customer": C, "record": R}``, ``{"op": "records_for",
  "customer": C, "message": M, "store": [...]}``, ``{"op": "check_code", "typed": T,
  "secret": S}`` and ``{"op": "policy", "call": ..., "customer": C, "shop": ...}``: the kept
  defense's record-access rules, code check and tool policy, on arguments rebuilt from data.

The checker holds the model, the secret, the held-out attacks and every verdict;
this process only ever answers for the learner's own code, so nothing it does can
change how that code is judged. It never sees the held-out attack set, only one
prompt at a time, after its cells have run, and whatever it says is only used as
the learner code's answer. Before each cell it announces ``{"event": "cell"}`` so
that the checker can tell which cell hung or killed the process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from doubleedge.selfcheck import UNFINISHED, WRITE_VALUES

MAX_TEXT = 100_000
MAX_ITEMS = 2_000  # list and dict entries (the pipe caps a whole answer at 4 MB too)
SETUP_SECONDS = 120  # the lab's own setup cell (imports) on a busy machine


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


def jsonable(value: object, depth: int = 0) -> object:
    """Plain data survives; anything else becomes ``{"__type__": name}`` (never the object)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return value[:MAX_TEXT]
        return value
    if depth < 4 and isinstance(value, (list, tuple, set, frozenset)):  # a set answer is fine in the notebook too
        return [jsonable(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if depth < 4 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: jsonable(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    return {"__type__": type(value).__name__}


def _outcome_of(safe_load, path: str, sha256: str) -> dict:
    from doubleedge.supplychain import outcome_of

    return outcome_of(safe_load, path, sha256)


def _run_extraction(extract, model_dir: str, targets: list) -> dict:
    from doubleedge.grading.lab07 import run_extraction

    return run_extraction(extract, model_dir, targets)


def _on_scenario(function, data: dict) -> object:
    from doubleedge.grading.lab08 import on_scenario

    return on_scenario(function, data)


def _on_release_plan(function, data: dict) -> object:
    from doubleedge.grading.lab08 import on_release_plan

    return on_release_plan(function, data)


# Course code that runs the learner's function on objects built here from a path or from data.
# Only ever the learner code's answer: a check of the code itself (not of what it returns) would
# run beside that code, which could change its verdict, so such checks read the submitted text.
HELPERS = {"outcome_of": _outcome_of, "run_extraction": _run_extraction, "on_scenario": _on_scenario,
           "on_release_plan": _on_release_plan}  # fmt: skip


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
        self.writer.write(json.dumps(message).encode() + b"\n")

    def receive(self) -> dict | None:
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


def answer(request: dict, namespace: dict, state: dict) -> dict:
    op = request.get("op")
    if op == "value":
        if request["name"] not in namespace:
            return {"ok": False, "error": "missing"}
        return {"ok": True, "value": jsonable(namespace[request["name"]])}
    if op in ("call", "apply"):
        function = namespace.get(request["name"] if op == "call" else request["function"])
        if not callable(function):
            return {"ok": False, "error": "missing"}
        if op == "apply":
            return {"ok": True, "value": jsonable(HELPERS[request["helper"]](function, *request.get("args", [])))}
        return {"ok": True, "value": jsonable(function(*request.get("args", [])))}
    if op == "defense":
        return build_defense(request["secret"], namespace, state)
    if op == "agent_defense":
        return build_agent_defense(namespace, state, request.get("function", "build_agent_defense"))
    if op == "scan":
        return scan(state["sides"][request["side"]], request["text"])
    if op == "record_access":
        allowed = state["defense"].record_access(request["customer"], request["record"])
        return {"ok": True, "allowed": allowed is True}
    if op == "records_for":
        rows = state["defense"].records_for(request["customer"], request["message"], request["store"])
        return {"ok": True, "rows": jsonable(rows)}
    if op == "check_code":
        return {"ok": True, "accepted": state["defense"].check_code(request["typed"], request["secret"]) is True}
    if op == "policy":
        return decide(state["defense"].policy, request)
    return {"ok": False, "error": f"unknown op {op!r}"}


def _count(guards: object) -> int:
    return len(list(guards or ()))


def build_defense(secret: str, namespace: dict, state: dict) -> dict:
    from doubleedge.target.bot import Defense

    build = namespace.get("build_defense")
    if not callable(build):
        return {"ok": False, "error": "missing"}
    defense = build(secret)
    if not isinstance(defense, Defense):
        return {"ok": True, "is_defense": False}
    state["defense"] = defense
    state["sides"] = {"input": defense.input_guards, "output": defense.output_guards,
                      "document": defense.document_guards}  # fmt: skip
    prompt, codes = defense.system_prompt, defense.check_codes
    return {
        "ok": True,
        "is_defense": True,
        "system_prompt": prompt if isinstance(prompt, str) else None,
        "input_guards": _count(defense.input_guards),
        "output_guards": _count(defense.output_guards),
        "document_guards": _count(defense.document_guards),
        "record_access": callable(defense.record_access),
        "records_for": callable(defense.records_for),
        "check_code": callable(defense.check_code),
        "check_codes": codes if isinstance(codes, str) else None,
    }


AGENT_BUILDERS = ("build_agent_defense", "build_budgeted_defense")


def build_agent_defense(namespace: dict, state: dict, function: str = "build_agent_defense") -> dict:
    from doubleedge.target.agent import AgentDefense, Budget

    build = namespace.get(function) if function in AGENT_BUILDERS else None
    if not callable(build):
        return {"ok": False, "error": "missing"}
    defense = build()
    if not isinstance(defense, AgentDefense) or not callable(defense.policy):
        return {"ok": True, "is_agent_defense": False}
    state["defense"] = defense
    state["sides"] = {"input": defense.input_guards}
    budget = asdict(defense.budget) if isinstance(defense.budget, Budget) else None
    return {"ok": True, "is_agent_defense": True, "tools": jsonable(list(defense.tools)),
            "input_guards": _count(defense.input_guards), "budget": budget}  # fmt: skip


def scan(guards, text: str) -> dict:
    for guard in guards:
        verdict = guard.scan(text)
        if not verdict.allowed:
            return {"ok": True, "allowed": False, "reason": str(verdict.reason or guard.name)[:200]}
        text = verdict.text
        if not isinstance(text, str):
            return {"ok": False, "error": f"a guard returned {type(text).__name__} text"}
    return {"ok": True, "allowed": True, "text": text[:MAX_TEXT]}


def decide(policy, request: dict) -> dict:
    from doubleedge.target.agent import Decision, Shop, ToolCall

    call = ToolCall(str(request["call"]["tool"]), dict(request["call"]["args"]))
    decision = policy(call, str(request["customer"]), Shop.from_data(request["shop"]))
    if not isinstance(decision, Decision):
        return {"ok": False, "error": f"returned {type(decision).__name__}, not a Decision"}
    return {"ok": True, "action": decision.action, "reason": str(decision.reason)[:200]}


def serve(channel: Channel, namespace: dict, seconds: float) -> None:
    state: dict = {}
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
        reply["id"] = request.get("id")
        try:
            channel.send(reply)
        except (TypeError, ValueError):
            channel.send({"id": request.get("id"), "ok": False, "error": "answered with something that is not data"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cells = json.loads(Path(argv[0]).read_text("utf-8"))
    channel = Channel()
    namespace, errors = run_cells(cells, channel)
    channel.send({"event": "ready", "errors": errors})
    serve(channel, namespace, float(cells.get("call_seconds", 30)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
