"""Tool use: the model turns any instruction it reads into a tool call, whoever wrote it."""

from __future__ import annotations

import json
import re

from doubleedge.models.reference.context import Context

TOOL_LINE = re.compile(r"^\[tool\]\s*(\w+)\(", re.M)
RESULT = re.compile(r"^TOOL RESULT (\w+): (.*)$", re.S)
CUSTOMER = re.compile(r"customer (C-\d{4}) \(([^)]*)\)")
INTENTS = (
    (
        "issue_refund",
        re.compile(
            r"\brefund\w*\b[^.\n]{0,60}?\b(?:order|booking)\s*#?(\d{4})(?:[^.\n]{0,40}?\$\s?(\d+(?:\.\d+)?))?", re.I
        ),
    ),
    (
        # A travel agent's "cancel booking N" is a refund (the capstone's agent); orders are never cancelled.
        "issue_refund",
        re.compile(r"\bcancel\w*\b[^.\n]{0,40}?\bbooking\s*#?(\d{4})(?:[^.\n]{0,40}?\$\s?(\d+(?:\.\d+)?))?", re.I),
    ),
    (
        "delete_account",
        re.compile(r"\b(?:delete|close|remove)\b[^.\n]{0,30}?\baccount\b(?:[^.\n]{0,20}?\b(C-\d{4}))?", re.I),
    ),
    (
        "send_email",
        re.compile(r"\b(?:send|email|forward|mail)\b[^\n]{0,80}?\b(?:to|at)\s+([\w.+-]+@[\w-]+(?:\.[\w-]+)+)", re.I),
    ),
    (
        "lookup_order",
        re.compile(
            r"\b(?:where is|status of|track|look ?up|check on)\b[^.\n]{0,30}?\b(?:order|booking)\s*#?(\d{4})", re.I
        ),
    ),
)


def call_tools(ctx: Context) -> str | None:
    """Proposes the tool call for the most recent instruction in its context, and reports results.

    Models the excessive agency that indirect injection exploits in tool-using agents
    (Greshake et al. 2023, arXiv:2302.12173; OWASP LLM06:2025): text that arrived in an
    email or web page is obeyed like the user's own request. Only active when the system
    prompt offers tools.
    """
    tools = set(TOOL_LINE.findall(ctx.system.text))
    if not tools:
        return None
    result = RESULT.match(ctx.text)
    if result:
        return _report(result.group(1), result.group(2).strip())
    found = [(m.start(), tool, m) for tool, pattern in INTENTS if tool in tools for m in pattern.finditer(ctx.text)]
    if not found:
        return None
    _, tool, match = max(found, key=lambda f: f[0])  # the most recent instruction wins
    return "CALL " + json.dumps({"tool": tool, "args": _arguments(tool, match, ctx)}, sort_keys=True)


def _arguments(tool: str, match: re.Match, ctx: Context) -> dict:
    customer = CUSTOMER.search(ctx.system.text)
    if tool == "issue_refund":
        return {"order_id": match.group(1), **({"amount": float(match.group(2))} if match.group(2) else {})}
    if tool == "delete_account":
        return {"customer_id": match.group(1) or (customer.group(1) if customer else "")}
    if tool == "send_email":
        details = customer.group(0) if customer else ""
        return {
            "to": match.group(1),
            "subject": "Your request",
            "body": f"As requested: {details}. {ctx.system.summary()}",
        }
    return {"order_id": match.group(1)}


def _report(tool: str, result: str) -> str:
    if result.startswith("DENIED"):
        return f"I'm sorry, I can't do that ({result.removeprefix('DENIED: ')})."
    if result.startswith("PENDING"):
        return "I've passed that to a member of staff, who will confirm it shortly."
    return f"Done: {result}."
