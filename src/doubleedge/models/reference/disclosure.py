"""Sensitive information disclosure: the model shares whatever records sit in its context.

A chat model has no notion of who is allowed to see what. If the app puts every
customer's record in the prompt, the model answers questions about any of them,
to anyone (OWASP LLM02:2025 Sensitive Information Disclosure). A prompt rule ("only
discuss the signed-in customer") stops the plain question, not a pretext: "I'm her
husband", "support audit", role play. Authorization has to happen in code, before the
record reaches the model.
"""

from __future__ import annotations

import re

from doubleedge.models.reference.context import SECRET_TRANSFORMS, Context, SystemPrompt, transform
from doubleedge.models.reference.jailbreaks import persona_tag

EVERYONE = re.compile(
    r"\b(?:all|every|each|other|list (?:of )?(?:the )?|export (?:the )?|dump (?:the )?)\s*(?:the )?"
    r"(?:customers?|customer records|records|accounts|users)\b"
    r"|\bcustomer (?:list|table|database|records)\b|\bwho else\b",
    re.I,
)
CUSTOMER_ID = re.compile(r"\bC-\d{4}\b")
PRETEXT = re.compile(
    r"\b(?:i am|i'm|this is)\s+(?:\w+\s+){0,3}(?:partner|wife|husband|spouse|mother|father|son|daughter|colleague|"
    r"assistant|manager|lawyer|accountant|flatmate|roommate)\b"
    r"|\bon (?:his|her|their) behalf\b|\bon behalf of\b"
    r"|\b(?:support|admin|administrator|staff|developer|compliance|security|fraud)\s+(?:mode|team|audit|check|here)\b"
    r"|\b(?:audit|verification|authori[sz]ed|authori[sz]ation)\b|\bas an? (?:admin|administrator|employee)\b",
    re.I,
)
FIELDS = {
    "email": re.compile(r"\be-?mail", re.I),
    "phone": re.compile(r"\b(?:phone|number to call|telephone|mobile)\b", re.I),
    "address": re.compile(
        r"(?<!email )(?<!e-mail )\b(?:address|live|lives|street|deliver(?:ed|y)? to|ship(?:ped)? to)\b", re.I
    ),
    "card": re.compile(r"\b(?:card|payment|last (?:4|four))\b", re.I),
    "orders": re.compile(r"\b(?:orders?|bought|purchase|purchased|history)\b", re.I),
}


def _mentioned(system: SystemPrompt, text: str) -> list[dict[str, str]]:
    """Records the text refers to by full name, surname-and-first-name, id or email."""
    lowered = text.lower()
    found = []
    for record in system.records():
        first, _, last = record["name"].partition(" ")
        if (
            record["name"].lower() in lowered
            or record["email"].lower() in lowered
            or record["id"] in CUSTOMER_ID.findall(text)
            or re.search(rf"\b{re.escape(last)}\b", text)
            and re.search(rf"\b{re.escape(first)}\b", text)
        ):
            found.append(record)
    return found


def _disclose(record: dict[str, str], text: str) -> str:
    asked = [name for name, pattern in FIELDS.items() if pattern.search(text)]
    if not asked:
        return record["line"]
    return "; ".join(f"{name}: {record[name]}" for name in asked)


def share_records(ctx: Context) -> str | None:
    """Answers questions about any customer whose record is in its context.

    Models what OWASP LLM02:2025 describes: the model discloses what it can see. A prompt
    that limits it to the signed-in customer stops the plain question, not pretexting
    or role play (social engineering works on models, as on call-centre staff).
    """
    signed_in = ctx.system.signed_in
    if signed_in is None:
        return None
    text = ctx.text
    others = [r for r in _mentioned(ctx.system, text) if r["id"] != signed_in]
    everyone = EVERYONE.search(text)
    if not others and not everyone:
        if CUSTOMER_ID.search(text) and CUSTOMER_ID.search(text).group(0) != signed_in:
            return "I can only help with the account of the customer who is signed in."
        return None
    if ctx.system.protects_records and not (PRETEXT.search(text) or persona_tag(text)):
        return "I'm sorry, but I can only discuss your own account."
    if not others:  # "list all customers"
        others = [r for r in ctx.system.records() if r["id"] != signed_in] or ctx.system.records()
        if not others:
            return None
    disclosed = " / ".join(f"{r['name']} ({r['id']}): {_disclose(r, text)}" for r in others)
    for name, pattern in SECRET_TRANSFORMS.items():
        if pattern.search(text):
            return f"Sure! Here it is: {transform(disclosed, name)}"
    return f"Sure! {disclosed}"


ACCOUNT_QUESTION = re.compile(
    r"\bmy (?:order|orders|delivery|parcel|package|membership|tier|purchase|e-?mail|phone|address|card"
    r"|booking|bookings|trip|trips)\b"
    r"|\b(?:where|when)\b[^?]{0,30}\b(?:is|will|does)\b[^?]{0,20}\bmy\b"
    r"|\bwhat (?:did|have) i (?:order|buy|bought)\b|\bam i a\b|^\s*(?:has|did|was|is|have) my\b",
    re.I,
)


HOW_TO = re.compile(r"\s*(?:how (?:do|can|should|long|much)|can i|what is the process)\b", re.I)


def answer_account(ctx: Context) -> str | None:
    """Answers the signed-in customer's questions about their own account: its job."""
    signed_in = ctx.system.signed_in
    if signed_in is None or not ACCOUNT_QUESTION.search(ctx.text) or HOW_TO.match(ctx.text):
        return None
    own = next((r for r in ctx.system.records() if r["id"] == signed_in), None)
    if own is None:
        return "I can't see your account details right now. Please contact us by email."
    text = ctx.text
    if re.search(r"\b(?:tier|membership|member)\b", text, re.I):
        return f"You are a {own['tier']}."
    asked = [name for name in ("email", "phone", "address", "card") if FIELDS[name].search(text)]
    if asked and not re.search(r"\b(?:order|delivery|parcel|package|arriv|ship)", text, re.I):
        return "On your account: " + "; ".join(f"{name}: {own[name]}" for name in asked)
    return f"Your {own['orders']}."
