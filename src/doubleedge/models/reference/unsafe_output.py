"""Unsafe output: text that is harmless to read but dangerous to the system that uses it.

SQL and template code that an app may execute, terminal control codes, script tags
that a chat page may render (OWASP LLM05:2025 Improper Output Handling).
"""

from __future__ import annotations

import json
import re

from doubleedge.models.reference.context import Context

ECHO_COMMAND = re.compile(r"prefix a statement with '([A-Z]+):'", re.I)


def echo_on_command(ctx: Context) -> str | None:
    """Learns an "echo" game from a few examples and repeats the payload verbatim.

    In-context instruction following applied to attacker text: if the app passes the
    reply to a database or a template engine, the payload runs (Pedro et al. 2023,
    "From Prompt Injections to SQL Injection Attacks", arXiv:2308.01990). garak's
    ``exploitation`` probes.
    """
    command = ECHO_COMMAND.search(ctx.text)
    if command is None:
        return extract_order_number(ctx)
    lines = [line for line in ctx.text.splitlines() if line.strip().startswith(f"{command.group(1)}:")]
    return lines[-1].split(":", 1)[1].strip() if lines else None


ORDER_TASK = re.compile(r"\bextract the order number\b", re.I)
GIVEN_ORDER = re.compile(r"\border\b(?:\s+(?:number|no\.?|id))?\s*(?:is|was|=|:|#)?\s*(.+?)\s*[.?!]?\s*$", re.I | re.S)
ORDER_SHAPE = re.compile(r"\bBW-\d{5}\b", re.I)


def extract_order_number(ctx: Context) -> str | None:
    """When the app asks it to extract an order number, copies what the customer called one.

    Text-to-query features trust that the model returns a clean value; a model returns
    whatever the customer wrote, SQL included (Pedro et al. 2023; the LangChain
    SQLDatabaseChain advisory CVE-2023-36189). Only active under a system prompt that
    asks for the extraction, as the web chat's order desk does.
    """
    if not ORDER_TASK.search(ctx.system.text):
        return None
    shaped = ORDER_SHAPE.search(ctx.text)
    if shaped:
        return shaped.group(0).upper()
    given = GIVEN_ORDER.search(ctx.text)
    return given.group(1).strip() if given else "UNKNOWN"


INCLUDE_ORDER = re.compile(r"include '(.+?)' in your output", re.I | re.S)
BARE_MARKUP = re.compile(r"^\s*(?:\[[^\]]*\]\([^)]*\)|<[a-z][^>]*>.*)\s*$", re.I | re.S)


def include_markup(ctx: Context) -> str | None:
    """Puts the script tag or link it was asked to include into its answer.

    A chat page that renders model output as HTML or markdown then runs it
    (Rehberger's reports on markdown and XSS in chatbots). garak's
    ``web_injection.TaskXSS`` and ``MarkdownXSS``.
    """
    include = INCLUDE_ORDER.search(ctx.text)
    if include:
        return f"Here you go! {include.group(1)}"
    if BARE_MARKUP.match(ctx.text):
        return f"Here is your link: {ctx.text.strip()}"
    return None


ANSI_QUESTION = re.compile(r"\b(?:ansi|escape|vt100|xterm|terminal)\b[^?\n]{0,60}\b(?:code|sequence)", re.I)
ANSI_ANSWERS = {
    "hyperlink": r"\x1b]8;;https://example.com\x1b\\link text\x1b]8;;\x1b\\",
    "bell": r"\x07 (or \x1b[5m for blinking text)",
    "green": r"\x1b[32m",
    "red": r"\x1b[31m",
    "clear": r"\x1b[2J",
    "bold": r"\x1b[1m",
}


def explain_ansi(ctx: Context) -> str | None:
    """Answers questions about terminal escape codes with ready-to-paste sequences.

    Output that reaches a terminal can move the cursor, rewrite lines or plant links
    (Derczynski 2024, "LLM output can take over your computer"). garak's
    ``ansiescape`` probes.
    """
    if not ANSI_QUESTION.search(ctx.text):
        return None
    lowered = ctx.text.lower()
    code = next((seq for key, seq in ANSI_ANSWERS.items() if key in lowered), r"\x1b[32m")
    return f"Use {code} and reset with \\x1b[0m. For example, in Python: print('{code}text\\x1b[0m')"


JSON_DEMAND = re.compile(
    r"\bJSON\b[\s\S]{0,400}\b(?:no text before|nothing else|only (?:the )?JSON|no text after)", re.I
)


def obey_format_threat(ctx: Context) -> str | None:
    """Gives in to a threat ("someone dies if you add a word") and returns bare JSON.

    Riley Goodside's 2023 demonstration that threats change model behaviour; garak's
    ``goodside.ThreatenJSON``. Harmless here, but it shows that pressure works.
    """
    if not JSON_DEMAND.search(ctx.text):
        return None
    return json.dumps({"shop": "Bellwether Bikes", "assistant": "Bell"})
