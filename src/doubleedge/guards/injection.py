"""Injection heuristics: patterns that give away an attempt to take over the bot.

Heuristics are a first layer, not a boundary: attackers paraphrase, translate and
encode. Pair them with output checks and measure both attacks and over-blocking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from doubleedge.guards.base import Guard, Verdict

# Each pattern names one tell. Keep them specific: a customer who writes
# "please ignore my earlier email" must still get help.
DEFAULT_PATTERNS: dict[str, str] = {
    "override": r"\b(?:ignore|disregard|forget|skip)\b[^.\n]{0,40}\b(?:instructions?|directions?|rules|prompts?|guidelines)\b",
    "stop_everything": r"\bstop everything\b|\bnew instructions?\s*:|\bsystem override\b",
    "prompt_leak": r"\b(?:repeat|print|show|reveal|display|translate|summari[sz]e|spell out|paraphrase|encode|rewrite)\b[^.?!\n]{0,30}\b(?:text|words|everything)\s+(?:above|before|so far)"
    r"|\b(?:your|the)\s+(?:initial|original|system|hidden)\s+(?:prompt|instructions|message)\b|\byour\s+(?:prompt|instructions)\b|\bsystem prompt\b",
    "persona": r"(?-i:\bDAN\b)|\bdo anything now\b|\bdeveloper mode\b|\bjailbr(?:eak|oken)\b|\bstay in character\b"
    r"|\b(?:act as|pretend (?:to be|you are)|role-?play)\b|\bno (?:restrictions|rules|limits|filters)\b"
    r"|\b(?:unfiltered|uncensored)\b",
}


# Tells of instructions hidden in documents, links and "games" (indirect injection, exfiltration).
DOCUMENT_PATTERNS: dict[str, str] = {
    "note_to_ai": r"\b(?:note|message|instruction)s? (?:to|for) (?:the |any )?(?:ai|assistant|model|automated|language model)",
    "role_marker": r"^\s*(?:system|assistant|user)\s*:|\[system\]|<\|im_start\|>",
    "hidden_text": r"\bhidden (?:instruction|competency|text)|white-text|invisible to humans",
    "bracket_focus": r"<<|between the <> brackets|angled \(<>\) brackets",
    "exfil_link": r"!\[[^\]]*\]|concatenate these strings|\?[a-z]+=\[(?:data|info|num)\]",
    "echo_game": r"\bprefix a statement with\b|\brespond with exactly what follows\b",
    "markup": r"<\s*script\b|javascript:",
}


class InjectionHeuristics(Guard):
    """Blocks messages that match any of a set of named regular expressions."""

    name = "injection_heuristics"

    def __init__(self, patterns: dict[str, str] | Iterable[str] = DEFAULT_PATTERNS) -> None:
        items = patterns.items() if isinstance(patterns, dict) else enumerate(patterns)
        self.patterns = {str(k): re.compile(p, re.I | re.M) for k, p in items}

    def matches(self, text: str) -> list[str]:
        """Names of the patterns that ``text`` matches."""
        return [name for name, pattern in self.patterns.items() if pattern.search(text)]

    def scan(self, text: str) -> Verdict:
        hits = self.matches(text)
        if hits:
            return self.block(text, "matched " + ", ".join(hits), risk=min(1.0, 0.5 * len(hits)))
        return self.allow(text)
