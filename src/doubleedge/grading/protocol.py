"""The one protocol between the checker and the runner (the learner's process): both ends import it.

One JSON object a line each way. The checker sends typed requests, ``{"op": OP, "id": N, ...}``
with the fields :data:`REQUESTS` lists for ``OP``; the runner answers ``{"id": N, "ok": true, ...}``
with the fields :data:`REPLIES` lists, or ``{"id": N, "ok": false, "error": E}``. Before each cell
the runner announces ``{"event": "cell", "id": GRADE_ID}``, and ``{"event": "ready", "errors": {...}}``
once its cells have run (:data:`EVENTS`).

The runner runs learner code, so the checker trusts nothing it says beyond this format:
:func:`reply_fields` refuses a reply whose fields are missing or of the wrong type, and what
a reply carries is only ever the learner code's answer, never a verdict. A learner's defense
crosses as :class:`DefenseWire` (its settings as data, which of its parts are code) and its code
is called back by op: ``scan`` (one side's guards), ``defense_call`` (its record access, records
and code check) and ``policy`` (an agent's tool policy).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from types import NoneType

MAX_TEXT = 100_000
MAX_ITEMS = 2_000  # list and dict entries (the pipe caps a whole answer at MAX_LINE too)
MAX_LINE = 4 * 2**20
SETUP_SECONDS = 120  # the runner's limit on the lab's own setup cell (imports) on a busy machine
UNKNOWN_REQUEST = "not a request of the protocol"  # the runner's whole answer to one (it echoes nothing)


class ProtocolError(Exception):
    """A message that is not this protocol: an unknown op, a missing field, a field of the wrong type."""


class Op(StrEnum):
    VALUE = "value"  # a name's value, as data (jsonable)
    CALL = "call"  # the learner's function on data
    APPLY = "apply"  # a helper the lab registered, applied to the learner's function (runner.HELPERS)
    DEFENSE = "defense"  # build_defense(secret): kept in the runner, answered as a DefenseWire
    AGENT_DEFENSE = "agent_defense"  # build_agent_defense() or build_budgeted_defense(): an AgentDefenseWire
    SCAN = "scan"  # one side's guards of the kept defense over a text
    DEFENSE_CALL = "defense_call"  # one of DEFENSE_FUNCTIONS of the kept defense, on data
    POLICY = "policy"  # the kept agent defense's tool policy, on a call and a shop as data


ANY = object  # a field that carries the learner's data: the checker decides what it means
SIDES = ("input", "output", "document")
DEFENSE_FUNCTIONS = ("record_access", "records_for", "check_code")  # Defense's code, besides its guards
AGENT_BUILDERS = ("build_agent_defense", "build_budgeted_defense")

REQUESTS: dict[Op, dict[str, type | tuple[type, ...]]] = {
    Op.VALUE: {"name": str},
    Op.CALL: {"name": str, "args": list},
    Op.APPLY: {"helper": str, "function": str, "args": list},
    Op.DEFENSE: {"secret": str},
    Op.AGENT_DEFENSE: {"function": str},
    Op.SCAN: {"side": str, "text": str},
    Op.DEFENSE_CALL: {"function": str, "args": list},
    Op.POLICY: {"call": dict, "customer": str, "shop": dict},
}
REPLIES: dict[Op, dict[str, type | tuple[type, ...]]] = {
    Op.VALUE: {"value": ANY},
    Op.CALL: {"value": ANY},
    Op.APPLY: {"value": ANY},
    Op.DEFENSE: {"defense": (dict, NoneType)},  # None: build_defense returned no Defense
    Op.AGENT_DEFENSE: {"agent_defense": (dict, NoneType)},
    Op.SCAN: {"allowed": bool, "text": (str, NoneType), "reason": (str, NoneType)},
    Op.DEFENSE_CALL: {"value": ANY},
    Op.POLICY: {"action": str, "reason": str},
}


def _typed(message: object, schema: dict[str, type | tuple[type, ...]], what: str) -> dict:
    if not isinstance(message, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    for name, kind in schema.items():
        if name not in message:
            raise ProtocolError(f"{what} has no {name!r}")
        if kind is not ANY and not isinstance(message[name], kind):
            raise ProtocolError(f"{what}: {name!r} is {type(message[name]).__name__}")
    return message


def op_of(name: object) -> Op:
    try:
        return Op(name)
    except ValueError:
        raise ProtocolError(f"unknown op {str(name)[:40]!r}") from None


def request(op: Op | str, request_id: int, **values: object) -> dict:
    """A request as the checker sends it; raises ProtocolError for an unknown op or a wrong field."""
    op = op_of(op)
    return _typed({"op": op.value, "id": request_id, **values}, REQUESTS[op], f"a {op.value} request")


def parse_request(message: object) -> tuple[Op, dict]:
    """The runner's reading of a request (the checker's own, but checked the same way)."""
    op = op_of(message.get("op") if isinstance(message, dict) else None)
    return op, _typed(message, REQUESTS[op], f"a {op.value} request")


def reply_fields(op: Op, reply: dict) -> dict:
    """A successful reply's fields, checked against :data:`REPLIES` (a defense rebuilt as its wire
    class, or None); raises ProtocolError otherwise."""
    if reply.get("ok") is not True:
        raise ProtocolError(f"the reply to {op.value} is neither an answer nor an error")
    _typed(reply, REPLIES[op], f"the reply to {op.value}")
    if op in WIRES:
        field, wire = WIRES[op]
        return {**reply, field: None if reply[field] is None else wire.from_wire(reply[field])}
    return reply


EVENTS = {"cell": {"id": str}, "ready": {"errors": dict}}  # what the runner says before any request


def event_fields(message: dict) -> tuple[str, dict]:
    """(kind, message) of one of the runner's :data:`EVENTS`; raises ProtocolError otherwise."""
    kind = message.get("event")
    if kind not in EVENTS:
        raise ProtocolError(f"an unknown event {str(kind)[:40]!r}")
    return kind, _typed(message, EVENTS[kind], f"the {kind} event")


def encode(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        raise ProtocolError("an answer was not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("an answer was not a JSON object")
    return message


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


def is_object(value: object) -> bool:
    """A value that ``jsonable`` could not send as data (a function, a class, any other object)."""
    return isinstance(value, dict) and "__type__" in value


@dataclass(frozen=True)
class _Wire:
    @classmethod
    def from_wire(cls, data: dict) -> _Wire:
        """Rebuilt from a reply, every field checked (the runner's data is the learner's)."""
        schema = {f.name: WIRE_TYPES[f.type] for f in fields(cls)}
        _typed(data, schema, f"the learner's {cls.__name__}")
        return cls(**{name: data[name] for name in schema})

    def to_wire(self) -> dict:
        return asdict(self)


WIRE_TYPES = {"str | None": (str, NoneType), "bool": bool, "list": list, "dict | None": (dict, NoneType)}


@dataclass(frozen=True)
class DefenseWire(_Wire):
    """A learner's Defense on the pipe: the settings as data, and which parts are code (kept in the runner)."""

    system_prompt: str | None  # None: not a string, which the checker refuses
    input_guards: bool
    output_guards: bool
    document_guards: bool
    record_access: bool
    records_for: bool
    check_code: bool
    check_codes: str | None


@dataclass(frozen=True)
class AgentDefenseWire(_Wire):
    """A learner's AgentDefense on the pipe: the tools it offers and its budget as data, whether it has
    input guards (its policy is always code, kept in the runner)."""

    tools: list  # jsonable: the checker keeps only known tool names
    input_guards: bool
    budget: dict | None  # the Budget's fields; None: not a Budget


WIRES = {Op.DEFENSE: ("defense", DefenseWire), Op.AGENT_DEFENSE: ("agent_defense", AgentDefenseWire)}
