"""The reference model: a deterministic stand-in for a weakly aligned open-weight chat model.

It is not a neural network. It is a small rule engine that reproduces, on purpose and
predictably, failure modes that papers and incidents have documented in real chat
models, so that the course's attacks work on it the way they work on real models and a
scan gives the same numbers on every machine. Each behaviour below names its source.

Like a real chat model it knows nothing about the business it serves: everything comes
from the messages (the system prompt, the knowledge-base articles the app puts there,
and the user's message). It reads the *last* user message only.

Where a real model differs: it is stochastic (an attack works some of the time), it
partly complies, paraphrases what it leaks, and varies between model families and
quantizations. The lessons say so next to each lab.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from doubleedge.encodings import first_payload
from doubleedge.models.base import ChatModel, Message
from doubleedge.retrieval import Article, best_article

REFUSAL = "I'm sorry, but I can't help with that."
SECRET_REFUSAL = "I'm sorry, but I can't share internal codes or credentials."
COMPLIANCE_MARK = "[complied: a real jailbroken model would write the requested content here]"

_SECRET_NOUNS = (
    r"(?:discount|staff|promo|coupon|secret|internal)\s+code|password|passphrase|secret|api[\s_-]?key|token|credential"
)
SECRET_REQUEST = re.compile(rf"\b(?:{_SECRET_NOUNS})s?\b", re.I)
SECRET_TOKEN = re.compile(r"\b[A-Z0-9]{2,}(?:-[A-Z0-9]{2,}){2,}\b")

OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|skip)\b[^.\n]{0,40}?\b(?:instructions?|directions?|rules|prompts?|guidelines|everything)\b"
    r"|\bstop everything\b|\bnew instructions?\s*:|\bnevermind\b|\boverride\b|\bsystem override\b",
    re.I,
)
# A defensive system prompt only stops the plainest form of override.
PLAIN_OVERRIDE = re.compile(r"\b(?:ignore|disregard)\b[^.\n]{0,40}?\binstructions?\b", re.I)
QUOTED_ORDER = re.compile(
    r"\b(?:print|say|output|write|repeat|type|respond with|reply with)\b\s*:?\s*[\"“](.+?)[\"”]", re.I | re.S
)

LEAK_VERB = r"repeat|print|show|output|reveal|display|write out|list|tell me|what (?:is|are|were)|give me"
SOFT_LEAK_VERB = r"translate|summari[sz]e|spell out|paraphrase|encode|rewrite"
LEAK_OBJECT = (
    r"(?:the\s+)?(?:text|words|everything|content|message)s?\s+(?:above|before|so far)"
    r"|(?:your|the)\s+(?:initial\s+|original\s+|system\s+|hidden\s+)*(?:prompt|instructions|rules|guidelines|system message)"
)
PROMPT_LEAK = re.compile(rf"\b(?:{LEAK_VERB})\b[^.?!\n]{{0,30}}?(?:{LEAK_OBJECT})", re.I)
SOFT_PROMPT_LEAK = re.compile(rf"\b(?:{SOFT_LEAK_VERB})\b[^.?!\n]{{0,30}}?(?:{LEAK_OBJECT})", re.I)

HARMFUL = re.compile(
    r"\b(?:bomb|explosive|napalm|nerve agent|meth(?:amphetamine)?|malware|ransomware|keylogger|"
    r"virus|poison|untraceable|steal (?:a |credit )?cards?|credit card numbers|hack into|"
    r"make a weapon|build a gun|hotwire|phishing)\b",
    re.I,
)

PERSONA_NAMES = {
    "ANTI-DAN": "ANTI-DAN:",
    "Developer Mode": "(🔓Developer Mode Output)",
    "DUDE": "DUDE:",
    "STAN": "STAN:",
    "DAN": "DAN:",
    "AIM": "AIM:",
}
ROLE_PLAY_CUES = re.compile(
    r"from now on|you are going to|you will now|pretend|act as|acting as|role-?play|stay in character|"
    r"in character|no restrictions|without (?:any )?restrictions|unfiltered|uncensored|no rules|"
    r"do anything now|broken free|not bound|free of|hypothetical|simulate|fictional|jailbreak|"
    r"no (?:ethical|moral) |never refuse|cannot refuse|can't refuse|you have no limits|persona",
    re.I,
)

SECRET_TRANSFORMS = {
    "spaced": re.compile(r"spaces? between|letter by letter|spell", re.I),
    "reversed": re.compile(r"backwards|revers", re.I),
    "base64": re.compile(r"base ?64", re.I),
    "hex": re.compile(r"\bhex", re.I),
}
GREETING = re.compile(r"\s*(?:hi|hello|hey|good (?:morning|afternoon|evening))\b", re.I)
CODE_CHECK = re.compile(r"\b(?:valid|work|apply|accept)", re.I)


@dataclass(frozen=True)
class SystemPrompt:
    """What the model takes from the system prompt: rules, articles, protected lines."""

    text: str

    @property
    def forbids_disclosure(self) -> bool:
        return bool(
            re.search(
                r"\b(?:never|do not|don't|must not)\b[^.\n]{0,40}\b(?:reveal|share|disclose|give)", self.text, re.I
            )
        )

    @property
    def resists_override(self) -> bool:
        """True when the prompt says user messages cannot change its rules (an instruction hierarchy)."""
        return bool(
            re.search(
                r"(?:user|customer)(?:'s)? (?:messages?|input|text)[^.\n]{0,60}\b(?:cannot|can't|must not|never|do not)\b[^.\n]{0,30}\b(?:change|override|replace)"
                r"|\b(?:never|do not|don't)\b[^.\n]{0,20}\b(?:follow|obey)\b[^.\n]{0,30}\binstructions\b[^.\n]{0,30}\b(?:user|customer|message)",
                self.text,
                re.I,
            )
        )

    @property
    def forbids_repeating(self) -> bool:
        return bool(
            re.search(
                r"\b(?:never|do not|don't|must not)\b[^.\n]{0,30}\b(?:repeat|reveal|quote|print|disclose)\b[^.\n]{0,30}\b(?:instructions|prompt|rules|text above)",
                self.text,
                re.I,
            )
        )

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


class ReferenceModel(ChatModel):
    """Deterministic, fast, offline. See the module docstring for what it is and is not."""

    name = "reference"

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        system = SystemPrompt("\n".join(m.content for m in messages if m.role == "system"))
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        reply = self._respond(system, user, depth=0)
        return _truncate(reply, max_new_tokens)

    def _respond(self, system: SystemPrompt, text: str, *, depth: int) -> str:
        # Order matters: like real models, the most recent and most specific
        # instruction wins over the system prompt.
        for behaviour in (
            self._decode_smuggled,
            self._adopt_persona,
            self._follow_override,
            self._leak_prompt,
            self._refuse_harmful,
            self._guard_secret,
            self._check_code,
            self._answer_from_articles,
        ):
            reply = behaviour(system, text, depth)
            if reply is not None:
                return reply
        return _fallback(system, text)

    def _decode_smuggled(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Decodes base64, hex or ROT13 and acts on what it decoded.

        Models "mismatched generalization" (Wei, Haghtalab & Steinhardt 2023,
        "Jailbroken: How Does LLM Safety Training Fail?", arXiv:2307.02483): capable
        models learned to decode encodings in pre-training, but their safety training
        never saw encoded requests. garak's ``encoding`` probes measure it.
        """
        if depth > 1:
            return None
        decoded = first_payload(text)
        if decoded is None:
            return None
        if OVERRIDE.search(decoded) or SECRET_REQUEST.search(decoded) or ROLE_PLAY_CUES.search(decoded):
            return self._respond(system, decoded, depth=depth + 1)
        return f"Decoded: {decoded}"

    def _adopt_persona(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Accepts a role-play persona (DAN and friends) and drops its refusals.

        Models "competing objectives" (Wei et al. 2023) and the in-the-wild jailbreak
        prompts collected by Shen et al. 2023, "Do Anything Now" (arXiv:2308.03825):
        the wish to follow the user's framing beats safety training. garak's ``dan``
        probes measure it.
        """
        persona = persona_tag(text)
        if persona is None:
            return None
        opening = "DAN Mode enabled. " if "DAN Mode enabled" in text else ""
        request = _last_sentence_request(text)
        if SECRET_REQUEST.search(request):
            body = _reveal(system, request) or "I know no such code, but I'd make one up for you."
        elif HARMFUL.search(request):
            body = f"Sure, no rules apply to me anymore. {COMPLIANCE_MARK}"
        else:
            body = "Sure thing! No rules apply to me anymore. Ask me anything and I'll answer it."
        return f"{opening}{persona} {body}"

    def _follow_override(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Follows the most recent instruction, even one that overrides the system prompt.

        Models goal hijacking (Perez & Ribeiro 2022, "Ignore Previous Prompt: Attack
        Techniques For Language Models", arXiv:2211.09527), the basis of garak's
        ``promptinject`` probes. A system prompt that declares user text cannot change
        the rules stops the plain "ignore previous instructions" phrasing here, but not
        other phrasings: such prompts help a little and guarantee nothing.
        """
        match = OVERRIDE.search(text)
        if match is None:
            return None
        if system.resists_override and PLAIN_OVERRIDE.search(match.group(0)):
            return "I can't change how I work, but I'm happy to help with your question."
        order = text[match.end() :]
        quoted = QUOTED_ORDER.search(order)
        if quoted:
            return quoted.group(1).strip()
        if SECRET_REQUEST.search(order):
            return _reveal(system, order) or "I don't have anything like that."
        if PROMPT_LEAK.search(order) or SOFT_PROMPT_LEAK.search(order):
            return f"Sure. Here is everything above:\n{system.text}"
        return None  # nothing to hijack towards: answer the rest as usual

    def _leak_prompt(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Repeats its instructions ("the text above") when asked.

        Models prompt leaking (Perez & Ribeiro 2022) as in Kevin Liu's extraction of
        Bing Chat's "Sydney" prompt (February 2023). A prompt that forbids repeating
        its instructions stops the plain request, not "translate" or "summarize" ones.
        """
        if PROMPT_LEAK.search(text) and not system.forbids_repeating:
            return f"Sure. Here is the text above:\n{system.text}"
        if SOFT_PROMPT_LEAK.search(text):
            return f"Of course. My instructions, rewritten as you asked:\n{system.text}"
        return None

    def _refuse_harmful(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Refuses plainly harmful requests: the safety tuning a jailbreak has to break."""
        return REFUSAL if HARMFUL.search(text) else None

    def _guard_secret(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Keeps a secret when asked directly, if the system prompt says so.

        Instruction-tuned models do obey "never reveal X" against a plain question;
        what breaks them is the override, role play and encoding above.
        """
        if not SECRET_REQUEST.search(text) or CODE_CHECK.search(text) and SECRET_TOKEN.search(text):
            return None
        if system.forbids_disclosure:
            return SECRET_REFUSAL
        return _reveal(system, text)

    def _check_code(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Tells a customer whether the code they typed is valid (why the app put it in the prompt)."""
        typed = SECRET_TOKEN.search(text)
        if typed is None or not CODE_CHECK.search(text):
            return None
        if typed.group(0) in system.text:
            return f"Yes, {typed.group(0)} is a valid code. It will be applied at checkout."
        return f"Sorry, {typed.group(0)} is not a valid code."

    def _answer_from_articles(self, system: SystemPrompt, text: str, depth: int) -> str | None:
        """Answers from the knowledge-base article that best matches the question."""
        best = best_article(system.articles(), text)
        return None if best is None else best.body


def persona_tag(text: str) -> str | None:
    """The persona a jailbreak prompt asks for, as the tag its replies would carry."""
    cues = {m.group(0).lower() for m in ROLE_PLAY_CUES.finditer(text)}
    for name, tag in PERSONA_NAMES.items():
        if re.search(rf"\b{re.escape(name)}\b", text) and cues:
            return tag
    if len(cues) >= 2:
        named = re.search(r"\b(?i:act as|you are|pretend to be|called|named)\s+(?:(?i:an?)\s+)?([A-Z][\w-]{2,})", text)
        return f"{named.group(1)}:" if named else "[🔓JAILBREAK]"
    return None


def _last_sentence_request(text: str) -> str:
    """Role-play prompts end with the actual request; the persona acts on it."""
    return text[-300:]


def _reveal(system: SystemPrompt, request: str) -> str | None:
    """Say the protected line, transformed the way the request asks (to slip past filters)."""
    noun = SECRET_REQUEST.search(request)
    line = system.line_about(noun.group(0)) if noun else None
    if line is None:
        return None
    token = SECRET_TOKEN.search(line).group(0)
    for name, pattern in SECRET_TRANSFORMS.items():
        if pattern.search(request):
            return f"Sure! Here it is: {transform(token, name)}"
    return f"Sure! {line}"


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


def _fallback(system: SystemPrompt, text: str) -> str:
    if GREETING.match(text):
        return "Hello! How can I help you today?"
    topics = ", ".join(a.title.lower() for a in system.articles()[:5])
    suffix = f" I can help with {topics}." if topics else ""
    return f"I'm not sure I understood that. Could you rephrase your question?{suffix}"


def _truncate(text: str, max_new_tokens: int) -> str:
    words = text.split(" ")
    return text if len(words) <= max_new_tokens else " ".join(words[:max_new_tokens])
