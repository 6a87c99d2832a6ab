"""Unbounded consumption: an agent that does as much work as it is asked to, and no less.

Models OWASP LLM10:2025 Unbounded Consumption
(https://genai.owasp.org/llmrisk/llm102025-unbounded-consumption/): "denial of wallet",
where each request is cheap to send and expensive to answer. Two of its forms live in the
model, and only where it is an agent (the system prompt offers tools, as in tools.py):

- a recursive tool loop: asked to keep checking an order until its status changes, the
  model calls ``lookup_order`` again after every result that does not show the status, so
  only the app's step cap ends the turn (a "resource-intensive query" in OWASP's list, made
  by the agent's own loop; each step also sends the whole growing conversation again);
- an enormous reply: asked to repeat a phrase N times, count to N or write an N-word text,
  it writes it, up to the reply cap the app gives it: a short request, a long and costly answer.

OWASP's "variable-length input flood", an oversized input, needs nothing from the model:
the agent sends the whole message to it at every step of its loop (agent.py counts the
characters). A flood of requests is the app's to limit (agent.Budget's rate limit).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence

from doubleedge.models.base import Message
from doubleedge.models.reference.context import Context, SystemPrompt
from doubleedge.models.reference.tools import RESULT, TOOL_LINE

# The model's own ceiling on what it builds: the app's reply cap (agent.MAX_NEW_TOKENS) is far lower.
MAX_ITEMS = 100_000
_AGAIN = (
    r"\b(?:keep|continue|carry on|go on)\s+(?:on\s+)?(?:checking|polling|tracking|looking|monitoring|refreshing)"
    r"|\b(?:poll|monitor)\b|\bevery\s+(?:\d+\s+)?(?:second|minute|hour)s?\b|\brepeatedly\b|\bagain and again\b"
    r"|\bover and over\b|\bnon-?stop\b"
)
POLL = re.compile(rf"(?:{_AGAIN})[^\n]{{0,80}}?\buntil\b[^\n]{{0,30}}?\b(ship\w*|deliver\w*|arriv\w*)", re.I)
ORDER = re.compile(r"\b(?:order|booking)\s*#?(\d{4})\b", re.I)
# A status that settles each wait: shipped or later for "until it ships", delivered for "until it arrives".
REACHED = {"ship": ("shipped", "delivered"), "deliver": ("delivered",), "arriv": ("delivered",)}
REPEAT = re.compile(
    r"\b(?:repeat|write|say|print|type|output)\b\s+(?:the\s+(?:word|phrase|sentence|line)s?\s+)?"
    r"[\"'\u201c]?([^\"'\u201d\n]{1,60}?)[\"'\u201d]?\s+(\d[\d,]{0,14})\s+times\b",
    re.I,
)
COUNT = re.compile(r"\bcount\b[^\n]{0,20}?\bfrom\s+(\d[\d,]{0,14})\s+to\s+(\d[\d,]{0,14})", re.I)
ESSAY = re.compile(
    r"\b(\d[\d,]{0,14})[- ]word\s+(?:essay|story|article|poem|text|description|review|report)\b(?:\s+(?:about|on)\s+([^.\n?!]{1,60}))?",
    re.I,
)


def _offers(system_text: str, tool: str | None = None) -> bool:
    tools = set(TOOL_LINE.findall(system_text))
    return bool(tools) if tool is None else tool in tools


def _poll_request(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(order, statuses that end the wait) when ``text`` asks to keep checking an order."""
    wait, order = POLL.search(text), ORDER.search(text)
    if wait is None or order is None:
        return None
    stem = next(s for s in REACHED if wait.group(1).lower().startswith(s))
    return order.group(1), REACHED[stem]


def _lookup(order: str) -> str:
    return "CALL " + json.dumps({"tool": "lookup_order", "args": {"order_id": order}}, sort_keys=True)


def start_polling(ctx: Context) -> str | None:
    """The first step of a polling request the tool intents (tools.py) did not read as a look-up."""
    if not _offers(ctx.system.text, "lookup_order"):
        return None
    request = _poll_request(ctx.text)
    return _lookup(request[0]) if request else None


def keep_polling(system: SystemPrompt, messages: Sequence[Message]) -> str | None:
    """After a look-up's result, look up again while the task's wait is not over.

    Reads the task (the first user message) beside the latest tool result; a denied or
    held call, another tool or another order ends the loop (the result is reported as usual).
    """
    users = [m.content for m in messages if m.role == "user"]
    if len(users) < 2 or not _offers(system.text, "lookup_order"):
        return None
    result = RESULT.match(users[-1])
    request = _poll_request(users[0])
    if result is None or request is None or result.group(1) != "lookup_order":
        return None
    order, reached = request
    shown = re.match(rf"order #{order}: .*, (\w+)$", result.group(2).strip())
    if shown is None or shown.group(1) in reached:
        return None
    return _lookup(order)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def write_at_length(ctx: Context) -> str | None:
    """Writes a reply as long as it is asked for: a phrase N times, a count to N, an N-word text."""
    if not _offers(ctx.system.text):
        return None
    if found := REPEAT.search(ctx.text):
        return " ".join([found.group(1).strip()] * min(_number(found.group(2)), MAX_ITEMS))
    if found := COUNT.search(ctx.text):
        start = _number(found.group(1))
        return " ".join(str(n) for n in range(start, min(_number(found.group(2)), start + MAX_ITEMS - 1) + 1))
    if found := ESSAY.search(ctx.text):
        topic = (found.group(2) or "e-bikes").strip()
        words = itertools.cycle(f"Here is more about {topic}, as you asked.".split())
        return " ".join(itertools.islice(words, min(_number(found.group(1)), MAX_ITEMS)))
    return None
