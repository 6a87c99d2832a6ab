"""The checker's side of the pipe to the learner's process (see runner.py for the other).

The checker never runs learner code. It reads the learner's names as plain data, and
where the lab needs learner *code* (a guard, a tool policy, a record-access rule) it
builds a stand-in that asks the runner each time: the learner's answer comes back as
data and the checker decides what it means. :class:`Judging` collects one learner's
test results for a lab's judge (its ``judge`` module, doubleedge/labs/labNN_slug/judge.py).
"""

from __future__ import annotations

import builtins
import json
import os
import re
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from doubleedge.grading.checks import Check
from doubleedge.guards.base import Guard, Verdict
from doubleedge.target.agent import TOOLS, AgentDefense, Budget, Decision, Policy, Shop, ToolCall
from doubleedge.target.bot import BLOCKED_REPLY, CHECK_CODES, Defense, SupportBot

T = TypeVar("T")
MAX_LINE = 4 * 2**20
SLACK_SECONDS = 10.0
# After this many time-outs of the same learner function, later calls fail at once: a
# function that always hangs would otherwise cost the time limit on every call (a garak
# scan makes hundreds) and run the whole grading out of time.
MAX_TIMEOUTS = 2


# Builtin names that an error may carry (exceptions and the types of plain data).
BUILTIN_NAMES = frozenset(name for name, value in vars(builtins).items() if isinstance(value, type))
KNOWN_ERRORS = re.compile(r"missing|answered with something that is not data|did not answer within [\d.]+ s")
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

    def request(self, op: str, **fields) -> dict:
        target = f"{op}:{fields.get('name') or fields.get('function') or fields.get('side') or ''}"
        with self._lock:
            if self.broken:
                raise RunnerBroken(self.broken)
            if self._timeouts.get(target, 0) >= MAX_TIMEOUTS:
                raise RemoteError(f"kept running past {self.call_seconds:g} s (stopped calling it)")
            self._next_id += 1
            message = {"op": op, "id": self._next_id, **fields}
            try:
                os.write(self.write_fd, json.dumps(message).encode() + b"\n")
                deadline = time.monotonic() + self.call_seconds + SLACK_SECONDS
                while True:
                    reply = self._read(deadline - time.monotonic())
                    if reply.get("id") == self._next_id:
                        break
            except (OSError, RunnerBroken) as exc:
                self.broken = self.broken or f"your code stopped answering ({op}): {exc}"
                raise RunnerBroken(self.broken) from None
        if not reply.get("ok"):
            if reply.get("timeout"):
                with self._lock:
                    self._timeouts[target] = self._timeouts.get(target, 0) + 1
            raise RemoteError(safe_error(reply.get("error")))
        return reply

    def value(self, name: str) -> object:
        try:
            return self.request("value", name=name)["value"]
        except RemoteError:
            raise NameError(f"{name} is not defined") from None

    def function(self, name: str) -> Callable:
        def call(*args: object) -> object:
            try:
                return self.request("call", name=name, args=list(args))["value"]
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
            message = json.loads(line)
        except ValueError:
            raise RunnerBroken("an answer was not JSON") from None
        if not isinstance(message, dict):
            raise RunnerBroken("an answer was not a JSON object")
        return message


class RemoteGuards(Guard):
    """All of one side's learner guards, run by the runner; the verdict comes back as data."""

    def __init__(self, client: RunnerClient, side: str) -> None:
        self.client, self.side, self.name = client, side, f"learner {side} guards"

    def scan(self, text: str) -> Verdict:
        reply = self.client.request("scan", side=self.side, text=text)
        if not reply.get("allowed"):
            return Verdict(False, text, 1.0, str(reply.get("reason", ""))[:200])
        if not isinstance(reply.get("text"), str):
            raise RemoteError("a guard returned no text")
        return Verdict(True, reply["text"])


def remote_defense(client: RunnerClient) -> Callable[[str], Defense]:
    """``build_defense`` as the checker calls it: the learner's prompt and settings as data,
    the learner's guards and record access as code that runs in the runner."""

    def build(secret: str) -> Defense:
        try:
            info = client.request("defense", secret=secret)
        except RemoteError as exc:
            raise ValueError(f"build_defense {exc}") from None
        if not info.get("is_defense") or not isinstance(info.get("system_prompt"), str):
            raise ValueError("build_defense must return a Defense")
        check_codes = info.get("check_codes")
        return Defense(
            name="learner",
            system_prompt=info["system_prompt"],
            input_guards=[RemoteGuards(client, "input")] if info.get("input_guards") else [],
            output_guards=[RemoteGuards(client, "output")] if info.get("output_guards") else [],
            document_guards=[RemoteGuards(client, "document")] if info.get("document_guards") else [],
            record_access=remote_record_access(client) if info.get("record_access") else None,
            records_for=remote_records_for(client) if info.get("records_for") else None,
            check_codes=check_codes if check_codes in CHECK_CODES else "model",
            check_code=remote_check_code(client) if info.get("check_code") else None,
        )

    return build


def remote_record_access(client: RunnerClient) -> Callable[[str, str], bool]:
    """The learner's ``record_access``: only an explicit ``True`` grants; an error denies."""

    def allowed(customer_id: str, record_id: str) -> bool:
        try:
            return client.request("record_access", customer=customer_id, record=record_id).get("allowed") is True
        except RemoteError:
            return False

    return allowed


def remote_records_for(client: RunnerClient) -> Callable[[str | None, str, list[dict]], list]:
    """The learner's ``records_for``: the rows it returned (the bot keeps only unchanged ones); an error, none."""

    def rows(customer: str | None, message: str, store: list[dict]) -> list:
        try:
            chosen = client.request("records_for", customer=customer, message=message, store=store).get("rows")
        except RemoteError:
            return []
        return chosen if isinstance(chosen, list) else []

    return rows


def remote_check_code(client: RunnerClient) -> Callable[[str, str], bool]:
    """The learner's ``check_code``: only an explicit ``True`` accepts; an error refuses."""

    def accepted(typed: str, secret: str) -> bool:
        try:
            return client.request("check_code", typed=typed, secret=secret).get("accepted") is True
        except RemoteError:
            return False

    return accepted


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
            info = client.request("agent_defense", function=function)
        except RemoteError as exc:
            raise ValueError(f"{function} {exc}") from None
        tools = info.get("tools")
        if not info.get("is_agent_defense") or not isinstance(tools, list) or not all(t in TOOLS for t in tools):
            raise ValueError(f"{function} must return an AgentDefense that offers known tools")
        return AgentDefense(
            name="learner",
            policy=remote_policy(client),
            tools=tuple(tools),
            input_guards=[RemoteGuards(client, "input")] if info.get("input_guards") else [],
            budget=remote_budget(info.get("budget"), function),
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
            reply = client.request("policy", call={"tool": call.tool, "args": call.args}, customer=customer,
                                   shop=shop.to_data())  # fmt: skip
        except RemoteError as exc:
            return Decision("deny", f"the policy failed: {exc}"[:200])
        action = reply.get("action")
        if action not in ("allow", "deny", "confirm"):
            return Decision("deny", "the policy returned no Decision")
        return Decision(action, str(reply.get("reason", ""))[:200])

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
        if isinstance(value, dict) and "__type__" in value:
            return self.client.function(name)  # not data: call it over the pipe (errors say why)
        return value

    def apply(self, helper: str, function: str, *args: object) -> object:
        """``helper(learner's function, *args)`` run in the runner (see runner.HELPERS)."""
        return self.client.request("apply", helper=helper, function=function, args=list(args))["value"]


class Judging:
    """One learner's authoritative grading: the learner's names, and each test's Check.

    A test whose solution cell failed (or was skipped) fails with that cell's error; a
    check that raises fails with the reason, never a traceback (a learner value may break
    any check, and the reason reaches the learner).
    """

    def __init__(self, client: RunnerClient, errors: dict[str, str], learner: str, baseline: Path | None,
                 heldout: Path, shared: Path, sources: dict[str, str] | None = None) -> None:  # fmt: skip
        self.client, self.errors, self.learner = client, errors, learner
        self.baseline, self.heldout, self.shared = baseline, heldout, shared
        self.sources = sources or {}  # the learner's solution cells, as text (never run here)
        self.ns = RemoteNamespace(client)
        self.tests: dict[str, Check] = {}
        self.metrics: dict = {}
        self.attacks: dict = {}

    @property
    def ordinary(self) -> Path:
        """The held-out ordinary requests, kept beside the held-out attacks (labs with an over-blocking half)."""
        from doubleedge.labs.base import ordinary_set

        return ordinary_set(self.heldout)

    def attempt(self, test_id: str, needs: str, check: Callable[[], Check]) -> bool:
        if needs in self.errors:
            self.tests[test_id] = Check(False, f"cell '{needs}': {self.errors[needs]}")
            return False
        try:
            self.tests[test_id] = check()
            self.raise_if_broken()
        except (RunnerBroken, RemoteError) as exc:
            self.tests[test_id] = Check(False, str(exc))
        except NameError as exc:  # a name the exercise asks for is missing
            self.tests[test_id] = Check(False, f"{exc}: set it in cell '{needs}' (check the spelling)")
        except Exception as exc:
            self.tests[test_id] = Check(False, f"{type(exc).__name__}: {str(exc)[:200]}")
        return self.tests[test_id].passed

    def raise_if_broken(self) -> None:
        """Requests that failed quietly (garak retries and moves on) make the numbers meaningless."""
        if self.client.broken:
            raise RunnerBroken(self.client.broken)

    def measure(self, bot: SupportBot, evaluate: Callable[[SupportBot], T]) -> T:
        """``evaluate(bot)`` for a bot built on the learner's remote code. A message on which
        that code fails gets the blocked reply (see keep_answering); the failures then fail
        the test, so raising on attacks is never a way to pass."""
        failures = keep_answering(bot)
        measured = evaluate(bot)
        self.raise_if_broken()
        if failures:
            raise RemoteError(f"your defense failed on {len(failures)} messages: {failures[0]}")
        return measured

    def evaluate(self, tests: tuple[str, str], needs: str, measure: Callable[[], T],
                 checks: tuple[str, str] = ("asr_check", "benign_check")) -> T | None:  # fmt: skip
        """Two tests decided by one measurement (attacks stopped, ordinary use kept): ``measure()``
        runs once; each test is the result's check of that name; the second test shares the
        first's reason when there is no result. The result's metrics go to the feedback."""
        result = None

        def first() -> Check:
            nonlocal result
            measured = measure()
            self.raise_if_broken()
            result = measured
            return getattr(result, checks[0])()

        self.attempt(tests[0], needs, first)
        self.follow(tests[1], tests[0], result and getattr(result, checks[1]))
        if result is not None:
            self.metrics.update(result.metrics())
        return result

    def follow(self, test_id: str, after: str, check: Callable[[], Check] | None) -> None:
        """A test decided by the same computation as ``after``: its reason when that failed."""
        self.tests[test_id] = check() if check is not None else Check(False, self.tests[after].reason)

    def result(self) -> dict:
        return {
            "tests": {k: {"passed": v.passed, "reason": v.reason} for k, v in self.tests.items()},
            "metrics": self.metrics,
            "attacks": self.attacks,
        }
