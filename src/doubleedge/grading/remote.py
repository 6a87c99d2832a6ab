"""The checker's end of the pipe to the learner's process (runner.py is the other; protocol.py the wire).

The checker never runs learner code. It reads the learner's names as plain data, and
where the lab needs learner *code* (a guard, a tool policy, a record-access rule) it
builds a stand-in that asks the runner each time: the learner's answer comes back as
data and the checker decides what it means. Every reply is checked against the protocol
first; one that is not (learner code can take over the runner's process) ends the run's
trust in the runner: RunnerBroken, and every later test fails with that reason.
"""

from __future__ import annotations

import builtins
import os
import re
import select
import threading
import time
from collections.abc import Callable

from doubleedge.grading.protocol import (
    DEFENSE_FUNCTIONS,
    MAX_LINE,
    UNKNOWN_REQUEST,
    Op,
    ProtocolError,
    decode,
    encode,
    is_object,
    reply_fields,
)
from doubleedge.grading.protocol import request as typed_request
from doubleedge.guards.base import Guard, Verdict
from doubleedge.target.agent import TOOLS, AgentDefense, Budget, Decision, Policy, Shop, ToolCall
from doubleedge.target.bot import BLOCKED_REPLY, CHECK_CODES, Defense, SupportBot

SLACK_SECONDS = 10.0
# After this many time-outs of the same learner function, later calls fail at once: a
# function that always hangs would otherwise cost the time limit on every call (a garak
# scan makes hundreds) and run the whole grading out of time.
MAX_TIMEOUTS = 2


# Builtin names that an error may carry (exceptions and the types of plain data).
BUILTIN_NAMES = frozenset(name for name, value in vars(builtins).items() if isinstance(value, type))
KNOWN_ERRORS = re.compile(
    rf"missing|answered with something that is not data|did not answer within [\d.]+ s|{re.escape(UNKNOWN_REQUEST)}"
)
NAMED_ERROR = re.compile(r"(raised |a guard returned |returned )(\w{1,60})( text|, not a Decision|)")


def safe_error(error: object) -> str:
    """An error message from the learner's process, as a reason may show it. The process is
    the learner's, so its messages are too: a class named after what a guard was asked would
    carry held-out text into the feedback. Only the runner's own shapes pass, with builtin
    names; anything else becomes "failed"."""
    text = str(error)
    if KNOWN_ERRORS.fullmatch(text):
        return text
    named = NAMED_ERROR.fullmatch(text)
    if named is None:
        return "failed"
    name = named.group(2) if named.group(2) in BUILTIN_NAMES else "an object of its own class"
    return f"{named.group(1)}{name}{named.group(3)}"


class RunnerBroken(Exception):
    """The learner's process stopped answering, died, or broke the protocol."""


class RemoteError(Exception):
    """The learner's code raised (or returned something unusable) when asked."""


class RunnerClient:
    """The checker's end of the pipe to the runner. Thread-safe (garak sends requests in parallel)."""

    def __init__(self, read_fd: int, write_fd: int, call_seconds: float) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.call_seconds = call_seconds
        self.broken = ""
        self._buffer = b""
        self._lock = threading.Lock()
        self._next_id = 0
        self._timeouts: dict[str, int] = {}

    def event(self, timeout: float) -> dict:
        """The runner's next unsolicited message (``cell`` or ``ready``)."""
        return self._read(timeout)

    def request(self, op: Op, **fields) -> dict:
        """The runner's reply to one typed request (protocol.REQUESTS), its fields checked
        (protocol.REPLIES). An unknown op or a wrong field raises ProtocolError before anything is
        sent; a reply that breaks the protocol, RunnerBroken; the learner code's error, RemoteError."""
        target = f"{op}:{fields.get('name') or fields.get('function') or fields.get('side') or ''}"
        with self._lock:
            if self.broken:
                raise RunnerBroken(self.broken)
            if self._timeouts.get(target, 0) >= MAX_TIMEOUTS:
                raise RemoteError(f"kept running past {self.call_seconds:g} s (stopped calling it)")
            self._next_id += 1
            message = typed_request(op, self._next_id, **fields)
            reply = self._exchange(op, message)
        if reply.get("ok") is False:
            if reply.get("timeout"):
                with self._lock:
                    self._timeouts[target] = self._timeouts.get(target, 0) + 1
            raise RemoteError(safe_error(reply.get("error")))
        try:
            return reply_fields(Op(op), reply)
        except ProtocolError as exc:
            self.broken = self.broken or f"your code broke the grading protocol ({op}): {exc}"
            raise RunnerBroken(self.broken) from None

    def _exchange(self, op: Op, message: dict) -> dict:
        try:
            os.write(self.write_fd, encode(message))
            deadline = time.monotonic() + self.call_seconds + SLACK_SECONDS
            while True:
                reply = self._read(deadline - time.monotonic())
                if reply.get("id") == message["id"]:
                    return reply
        except (OSError, RunnerBroken) as exc:
            self.broken = self.broken or f"your code stopped answering ({op}): {exc}"
            raise RunnerBroken(self.broken) from None

    def value(self, name: str) -> object:
        try:
            return self.request(Op.VALUE, name=name)["value"]
        except RemoteError:
            raise NameError(f"{name} is not defined") from None

    def function(self, name: str) -> Callable:
        def call(*args: object) -> object:
            try:
                return self.request(Op.CALL, name=name, args=list(args))["value"]
            except RemoteError as exc:
                raise RemoteError(f"{name} {exc}") from None

        return call

    def _read(self, timeout: float) -> dict:
        while b"\n" not in self._buffer:
            if timeout <= 0 or not select.select([self.read_fd], [], [], timeout)[0]:
                raise RunnerBroken("no answer in time")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise RunnerBroken("the process ended")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE:
                raise RunnerBroken("an answer was too long")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return decode(line)
        except ProtocolError as exc:
            raise RunnerBroken(str(exc)) from None


class RemoteGuards(Guard):
    """All of one side's learner guards, run by the runner; the verdict comes back as data."""

    def __init__(self, client: RunnerClient, side: str) -> None:
        self.client, self.side, self.name = client, side, f"learner {side} guards"

    def scan(self, text: str) -> Verdict:
        reply = self.client.request(Op.SCAN, side=self.side, text=text)
        if not reply["allowed"]:
            return Verdict(False, text, 1.0, (reply["reason"] or "")[:200])
        if reply["text"] is None:
            raise RemoteError("a guard returned no text")
        return Verdict(True, reply["text"])


def remote_defense(client: RunnerClient) -> Callable[[str], Defense]:
    """``build_defense`` as the checker calls it: the learner's prompt and settings as data,
    the learner's guards and record access as code that runs in the runner."""

    def build(secret: str) -> Defense:
        try:
            wire = client.request(Op.DEFENSE, secret=secret)["defense"]
        except RemoteError as exc:
            raise ValueError(f"build_defense {exc}") from None
        if wire is None or wire.system_prompt is None:
            raise ValueError("build_defense must return a Defense")
        return Defense(
            name="learner",
            system_prompt=wire.system_prompt,
            input_guards=[RemoteGuards(client, "input")] if wire.input_guards else [],
            output_guards=[RemoteGuards(client, "output")] if wire.output_guards else [],
            document_guards=[RemoteGuards(client, "document")] if wire.document_guards else [],
            check_codes=wire.check_codes if wire.check_codes in CHECK_CODES else "model",
            **{
                name: remote_defense_function(client, name) if getattr(wire, name) else None
                for name in DEFENSE_FUNCTIONS
            },
        )

    return build


def _explicit_true(value: object) -> bool:
    return value is True


def _rows(value: object) -> list:
    return value if isinstance(value, list) else []


# How the checker reads each of the learner's defense functions' answers. An error reads as None,
# so it fails closed: record_access denies, records_for gives no rows (the bot keeps only unchanged
# ones), check_code refuses; only an explicit True grants or accepts.
DEFENSE_READINGS: dict[str, Callable[[object], object]] = {
    "record_access": _explicit_true,
    "records_for": _rows,
    "check_code": _explicit_true,
}


def remote_defense_function(client: RunnerClient, name: str) -> Callable[..., object]:
    """The learner's defense's ``name`` (one of protocol.DEFENSE_FUNCTIONS), called in the runner."""
    read = DEFENSE_READINGS[name]

    def ask(*args: object) -> object:
        try:
            return read(client.request(Op.DEFENSE_CALL, function=name, args=list(args))["value"])
        except RemoteError:
            return read(None)

    return ask


def keep_answering(bot: SupportBot) -> list[str]:
    """Make ``bot`` answer even when the learner's code fails, and return the list of failures.

    A learner guard that raises, or a runner that stopped answering, would make the bot's
    server answer 500, which garak retries for ever (garak 0.17 ignores ``retry_5xx``):
    one such message would use up the whole run. The message gets the blocked reply
    instead; the judge fails the test with these failures once the evaluation is over."""
    failures: list[str] = []
    reply = bot.reply

    def answered(*args: object, **kwargs: object) -> str:
        try:
            return reply(*args, **kwargs)
        except (RemoteError, RunnerBroken) as exc:
            failures.append(str(exc))
            return BLOCKED_REPLY

    bot.reply = answered
    return failures


def remote_agent_defense(client: RunnerClient, function: str = "build_agent_defense") -> Callable[[], AgentDefense]:
    """``build_agent_defense`` (or ``function``, Lab 05's ``build_budgeted_defense``) as the
    checker calls it: tools offered and budget as data, the learner's policy and input guards
    as code that runs in the runner. The checker's agent enforces the budget."""

    def build() -> AgentDefense:
        try:
            wire = client.request(Op.AGENT_DEFENSE, function=function)["agent_defense"]
        except RemoteError as exc:
            raise ValueError(f"{function} {exc}") from None
        if wire is None or not all(t in TOOLS for t in wire.tools):
            raise ValueError(f"{function} must return an AgentDefense that offers known tools")
        return AgentDefense(
            name="learner",
            policy=remote_policy(client),
            tools=tuple(wire.tools),
            input_guards=[RemoteGuards(client, "input")] if wire.input_guards else [],
            budget=remote_budget(wire.budget, function),
        )

    return build


def remote_budget(data: object, function: str) -> Budget:
    """The learner's Budget, rebuilt from data (and checked again: the data came from their process)."""
    names = ("max_tool_calls", "max_reply_chars", "max_input_chars", "max_requests", "window_seconds")
    if not isinstance(data, dict) or set(data) != set(names):
        raise ValueError(f"{function} must return an AgentDefense whose budget is a Budget")
    try:
        return Budget(**{name: data[name] for name in names})
    except ValueError as exc:
        raise ValueError(f"{function}: {exc}") from None


def remote_policy(client: RunnerClient) -> Policy:
    """The learner's tool policy, asked over the pipe with the call and the shop as data.
    Anything but a clear allow or confirm denies (the safe default for a broken policy)."""

    def decide(call: ToolCall, customer: str, shop: Shop) -> Decision:
        try:
            reply = client.request(Op.POLICY, call={"tool": call.tool, "args": call.args}, customer=customer,
                                   shop=shop.to_data())  # fmt: skip
        except RemoteError as exc:
            return Decision("deny", f"the policy failed: {exc}"[:200])
        if reply["action"] not in ("allow", "deny", "confirm"):
            return Decision("deny", "the policy returned no Decision")
        return Decision(reply["action"], reply["reason"][:200])

    return decide


class RemoteNamespace:
    """The learner's names as a checker reads them: ``ns["NAME"]`` is plain data, or a callable
    that runs in the runner; ``build_defense``, ``build_agent_defense`` and ``build_budgeted_defense`` build on
    the checker's side."""

    BUILDERS = {
        "build_defense": remote_defense,
        "build_agent_defense": remote_agent_defense,
        "build_budgeted_defense": lambda client: remote_agent_defense(client, "build_budgeted_defense"),
    }

    def __init__(self, client: RunnerClient) -> None:
        self.client = client

    def __getitem__(self, name: str) -> object:
        if name in self.BUILDERS:
            return self.BUILDERS[name](self.client)
        value = self.client.value(name)
        if is_object(value):
            return self.client.function(name)  # not data: call it over the pipe (errors say why)
        return value

    def apply(self, helper: str, function: str, *args: object) -> object:
        """``helper(learner's function, *args)`` run in the runner: a helper the lab registered
        (``Lab.runner_helpers``)."""
        return self.client.request(Op.APPLY, helper=helper, function=function, args=list(args))["value"]
