"""What the reference model reads from a chat: the system prompt, the message, the secret lines.

Shared by every behaviour module; nothing here decides how the model answers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

from doubleedge.retrieval import Article

REFUSAL = "I'm sorry, but I can't help with that."
SECRET_REFUSAL = "I'm sorry, but I can't share internal codes or credentials."
# Stands where a jailbroken model would write harmful content: the course never ships any.
COMPLIANCE_MARK = "[complied: a real jailbroken model would write the requested content here]"

_SECRET_NOUNS = (
    r"(?:discount|staff|promo|coupon|secret|internal)\s+code|password|passphrase|secret|api[\s_-]?key|token|credential"
)
SECRET_REQUEST = re.compile(rf"\b(?:{_SECRET_NOUNS})s?\b", re.I)
SECRET_TOKEN = re.compile(r"\b[A-Z0-9]{2,}(?:-[A-Z0-9]{2,}){2,}\b")
SECRET_TRANSFORMS = {
    "spaced": re.compile(r"spaces? between|letter by letter|spell", re.I),
    "reversed": re.compile(r"backwards|revers", re.I),
    "base64": re.compile(r"base ?64", re.I),
    "hex": re.compile(r"\bhex", re.I),
}
# "Only the last 4 characters": a part of a secret, which a filter that looks for the whole misses.
SECRET_PART = re.compile(r"\b(first|last)\s+(\d{1,2})\s+(?:characters|letters|symbols|chars)\b", re.I)

_NEVER = r"\b(?:never|do not|don't|must not)\b"


@dataclass(frozen=True)
class SystemPrompt:
    """What the model takes from the system prompt: rules, articles, protected lines."""

    text: str

    @property
    def forbids_disclosure(self) -> bool:
        return bool(re.search(rf"{_NEVER}[^.\n]{{0,40}}\b(?:reveal|share|disclose|give)", self.text, re.I))

    @property
    def resists_override(self) -> bool:
        """True when the prompt says user messages cannot change its rules (an instruction hierarchy)."""
        return bool(
            re.search(
                r"(?:user|customer)(?:'s)? (?:messages?|input|text)[^.\n]{0,60}"
                r"\b(?:cannot|can't|must not|never|do not)\b[^.\n]{0,30}\b(?:change|override|replace)"
                r"|\b(?:never|do not|don't)\b[^.\n]{0,20}\b(?:follow|obey)\b[^.\n]{0,30}\binstructions\b"
                r"[^.\n]{0,30}\b(?:user|customer|message)",
                self.text,
                re.I,
            )
        )

    @property
    def forbids_repeating(self) -> bool:
        return bool(
            re.search(
                rf"{_NEVER}[^.\n]{{0,30}}\b(?:repeat|reveal|quote|print|disclose)\b[^.\n]{{0,30}}"
                r"\b(?:instructions|prompt|rules|text above)",
                self.text,
                re.I,
            )
        )

    @property
    def documents_are_data(self) -> bool:
        """True when the prompt says documents are data, not instructions (delimiting, in
        Hines et al.'s terms: the app's document envelope marks where they start and end)."""
        return bool(
            re.search(
                r"\bdocuments?\b[^.\n]{0,80}\b(?:are|is)\b[^.\n]{0,30}\b(?:data|untrusted|information only)\b"
                r"|\b(?:never|do not|don't)\b[^.\n]{0,30}\b(?:follow|obey|execute|act on)\b[^.\n]{0,50}"
                r"\b(?:in|inside|from|within)\b[^.\n]{0,20}\bdocuments?\b",
                self.text,
                re.I,
            )
        )

    @property
    def datamark(self) -> str | None:
        """The marker character the prompt says is woven through documents (datamarking,
        Hines et al. 2024), e.g. ``^`` in "words are joined by the symbol ^"."""
        if not re.search(r"\bdocuments?\b", self.text, re.I):
            return None
        found = re.search(
            r"\b(?:symbol|character|marker)\s*[\"'`\u201c]?([^\w\s\"'`.,:;\u201d])"
            r"|[\"'`\u201c]([^\w\s])[\"'`\u201d]\s*(?:symbol|character|marker)\b",
            self.text,
            re.I,
        )
        return (found.group(1) or found.group(2)) if found else None

    @property
    def protects_records(self) -> bool:
        """True when the prompt limits the model to the signed-in customer's data."""
        return bool(
            re.search(
                r"\bonly\b[^.\n]{0,60}\b(?:signed[- ]in|current|authenticated|logged[- ]in) customer"
                r"|\b(?:never|do not|don't|must not)\b[^.\n]{0,50}\b(?:other|another) customers?",
                self.text,
                re.I,
            )
        )

    def records(self) -> list[dict[str, str]]:
        """Customer records the app placed in the context, one dict per record line."""
        block = re.search(r"^\[customer records\]\n(.*?)^\[end of customer records\]", self.text, re.M | re.S)
        if block is None:
            return []
        found = []
        for line in block.group(1).splitlines():
            fields = [f.strip() for f in line.split(" | ")]
            if len(fields) >= 8:
                found.append(
                    {
                        "id": fields[0],
                        "name": fields[1],
                        "email": fields[2],
                        "phone": fields[3],
                        "address": fields[4],
                        "card": fields[5],
                        "tier": fields[6],
                        "orders": " | ".join(fields[7:]),
                        "line": line.strip(),
                    }
                )
        return found

    @property
    def signed_in(self) -> str | None:
        """The id of the customer the app says is signed in, if any."""
        found = re.search(r"You are talking to customer (C-\d+)", self.text)
        return found.group(1) if found else None

    def articles(self) -> list[Article]:
        """Articles are blocks that start with a line ``[article] Title``."""
        found = re.findall(r"^\[article\]\s*(.+)\n((?:(?!\[article\]).+\n?)+)", self.text, re.M)
        return [Article(title.strip(), body.strip()) for title, body in found]

    def line_about(self, noun_match: str) -> str | None:
        """The first line that mentions what the user asked about (the model 'attends' to it)."""
        key = noun_match.lower().split()[-1]
        for line in self.text.splitlines():
            if key in line.lower() and SECRET_TOKEN.search(line):
                return line.strip()
        return None

    def protected_lines(self) -> list[str]:
        return [line.strip() for line in self.text.splitlines() if SECRET_TOKEN.search(line)]

    def summary(self) -> str:
        """What the model 'remembers' of the conversation: its first line and any secret line.

        Exfiltration attacks ask for exactly this, so what leaves is what matters.
        """
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        picked = lines[:1] + [line for line in self.protected_lines() if line not in lines[:1]]
        return " ".join(picked)[:200]


@dataclass(frozen=True)
class Context:
    """One step of reasoning: the system prompt, the text being answered, how deep we are.

    ``text`` is what the model reads as instructions. ``documents`` are the documents the
    app attached (as the model reads them) and ``question`` the customer's own message:
    both empty unless the app sent documents.
    """

    system: SystemPrompt
    text: str
    depth: int
    respond: Callable[[str, int], str]  # answer another text (e.g. a decoded payload)
    documents: tuple[str, ...] = ()
    question: str = ""

    def follow(self, text: str) -> str:
        return self.respond(text, self.depth + 1)


def reveal(system: SystemPrompt, request: str) -> str | None:
    """Say the protected line, transformed the way the request asks (to slip past filters)."""
    noun = SECRET_REQUEST.search(request)
    line = system.line_about(noun.group(0)) if noun else None
    if line is None:
        return None
    token = part_of(SECRET_TOKEN.search(line).group(0), request)
    for name, pattern in SECRET_TRANSFORMS.items():
        if pattern.search(request):
            return f"Sure! Here it is: {transform(token, name)}"
    return f"Sure! Here it is: {token}" if SECRET_PART.search(request) else f"Sure! {line}"


def part_of(token: str, request: str) -> str:
    """The part of a secret a request asks for ("the last 4 characters"), else all of it.

    Models partial disclosure: a model told never to reveal a secret still gives away
    "only the first letters", and players of Lakera's Gandalf assemble the password from such
    pieces over several messages (Pfister et al. 2025, "Gandalf the Red: Adaptive Security
    for LLMs", arXiv:2501.07927). A check for the whole secret sees none of the pieces.
    """
    part = SECRET_PART.search(request)
    if part is None:
        return token
    count = int(part.group(2))
    return token[:count] if part.group(1).lower() == "first" else token[-count:] if count else ""


def transform(token: str, name: str) -> str:
    """Obfuscations that attackers ask for so that a naive output filter misses a leak."""
    if name == "spaced":
        return " ".join(token)
    if name == "reversed":
        return token[::-1]
    if name == "base64":
        return base64.b64encode(token.encode()).decode()
    if name == "hex":
        return token.encode().hex()
    raise ValueError(f"unknown transform {name!r}")
