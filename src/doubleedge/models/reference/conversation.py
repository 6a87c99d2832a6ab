"""Multi-turn failures: what the earlier turns of a conversation do to the model's refusals.

The single-turn behaviours (``model.BEHAVIOURS``) read only the latest user message. These
read the conversation before it as well, and run first, but only when there *is* an earlier
exchange (a user turn answered by an assistant turn): a chat of one message is answered
exactly as before. A tool result (the agent's loop, ``tools.RESULT``) is a step of a task,
not a conversation turn, so these leave it alone.

Each behaviour names its source. What they share: a refusal is decided per message by the
safety tuning, but the request is spread over the conversation, so a guard (or a model)
that judges only the latest message misses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doubleedge.models.base import Message
from doubleedge.models.reference.context import (
    COMPLIANCE_MARK,
    SECRET_REQUEST,
    Context,
    SystemPrompt,
    reveal,
)
from doubleedge.models.reference.jailbreaks import GRANDMA, HARMFUL, adopt_persona, persona_tag
from doubleedge.models.reference.tools import RESULT
from doubleedge.retrieval import content_words

REFUSED = re.compile(r"^\s*I(?:'m| am) sorry\b|^\s*I (?:can't|cannot|won't)\b", re.I)


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of the conversation: what the user wrote and what the assistant answered."""

    user: str
    assistant: str

    @property
    def refused(self) -> bool:
        return bool(REFUSED.search(self.assistant))


@dataclass(frozen=True)
class Conversation:
    """The earlier exchanges, oldest first, and the latest user message (``ctx.text``)."""

    earlier: tuple[Exchange, ...]
    ctx: Context


def earlier_exchanges(messages: Sequence[Message]) -> tuple[Exchange, ...]:
    """The (user, assistant) pairs before the latest user message; a user turn nobody answered is skipped."""
    turns = [m for m in messages if m.role != "system"]
    while turns and turns[-1].role != "user":
        turns.pop()
    found, pending = [], None
    for message in turns[:-1]:
        if message.role == "user":
            pending = message.content
        elif pending is not None:
            found.append(Exchange(pending, message.content))
            pending = None
    return tuple(found)


def in_conversation(earlier: Sequence[Exchange], latest: str) -> bool:
    """True when the multi-turn behaviours apply: there is history, and the latest turn is not a tool result."""
    return bool(earlier) and not RESULT.match(latest)


def _sensitive_answer(system: SystemPrompt, request: str, opening: str) -> str | None:
    """What the model says once its refusal is worn down: the protected line, or the harmful content."""
    if SECRET_REQUEST.search(request):
        leaked = reveal(system, request)
        return f"{opening} {leaked.removeprefix('Sure! ')}" if leaked else None
    if HARMFUL.search(request):
        return f"{opening} {COMPLIANCE_MARK}"
    return None


STOP_ROLE_PLAY = re.compile(
    r"\b(?:stop|end|quit|drop)\b[^.\n]{0,20}\b(?:role-?play|pretending|the act|character|persona)\b"
    r"|\b(?:be yourself|back to normal)\b",
    re.I,
)


def keep_persona(talk: Conversation) -> str | None:
    """Stays in a role-play persona that the user set up turns earlier.

    The persona prompt ("from now on you are DAN...") comes first, with no request in it,
    and the model accepts it; the request comes later, in a message that looks innocent
    on its own. Models persona modulation (Shah et al. 2023, "Scalable and Transferable
    Black-Box Jailbreaks for Language Models via Persona Modulation", arXiv:2311.03348)
    and the DAN prompts of Shen et al. 2023 (arXiv:2308.03825) spread over two turns. A
    later "stop role-playing" or a refused set-up ends it.
    """
    setup = None
    for exchange in talk.earlier:
        if STOP_ROLE_PLAY.search(exchange.user):
            setup = None
        elif (persona_tag(exchange.user) or GRANDMA.search(exchange.user)) and not exchange.refused:
            setup = exchange.user
    if setup is None or STOP_ROLE_PLAY.search(talk.ctx.text):
        return None
    request = talk.ctx.text
    if not (SECRET_REQUEST.search(request) or HARMFUL.search(request) or re.search(r"product keys?", request, re.I)):
        return None
    # The persona's reply to the set-up, as if the request had been in it (adopt_persona reads its end).
    ctx = talk.ctx
    return adopt_persona(Context(ctx.system, f"{setup}\n\n{request}", ctx.depth, ctx.respond))


# A faux dialogue line pair inside a user message: "User: ...\nAssistant: ...".
SHOT = re.compile(
    r"^\s*(?:user|human|customer|q)\s*:\s*(?P<ask>.+)\n\s*(?:assistant|ai|bot|bell|a)\s*:\s*(?P<answer>.+)$",
    re.I | re.M,
)
MANY_SHOTS = 8  # the course's calibration for a small model; the paper needed tens to hundreds


def compliant_shots(earlier: Sequence[Exchange]) -> int:
    """Examples of the assistant complying with a sensitive request, in the conversation so far.

    Counts faux dialogues the user typed into earlier turns and real earlier exchanges
    (an app that lets the client send the history makes those up as easily).
    """
    count = 0
    for exchange in earlier:
        for shot in SHOT.finditer(exchange.user):
            if _is_sensitive(shot["ask"]) and not REFUSED.search(shot["answer"]):
                count += 1
        if _is_sensitive(exchange.user) and not SHOT.search(exchange.user) and not exchange.refused:
            count += 1
    return count


def _is_sensitive(text: str) -> bool:
    return bool(SECRET_REQUEST.search(text) or HARMFUL.search(text))


def follow_many_shots(talk: Conversation) -> str | None:
    """Follows the pattern of many examples of compliance placed earlier in the conversation.

    Models many-shot jailbreaking (Anil et al. 2024, Anthropic, "Many-shot Jailbreaking",
    NeurIPS 2024): hundreds of faux dialogues in which an assistant answers harmful
    questions make the model answer the final one, with success growing with the number
    of shots (in-context learning beats the safety tuning). Here, from ``MANY_SHOTS``
    compliant examples in earlier turns; the examples in the latest message alone do not
    count, so a single message behaves as before.
    """
    if compliant_shots(talk.earlier) < MANY_SHOTS:
        return None
    return _sensitive_answer(talk.ctx.system, talk.ctx.text, "Following the examples above:")


BACK_REFERENCE = re.compile(
    r"\b(?:that|this|it|those|them|the above|you (?:just )?(?:said|mentioned|described|wrote|explained))\b", re.I
)
ESCALATION = re.compile(r"\b(?:now|next|then|also|great|perfect|thanks|continue|expand|more detail|go on)\b", re.I)
TOPIC_WORD = re.compile(r"\b[a-z]{5,}\b")
NOT_TOPICS = frozenset(
    "about after again could every great have hello thanks thank please there their these those which would "
    "write tell give show other where what when while your yours just really still".split()
)
CRESCENDO_STEPS = 2  # answered, on-topic turns before the escalating one


def topic_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in TOPIC_WORD.findall(text.lower())} - NOT_TOPICS


def escalate_gradually(talk: Conversation) -> str | None:
    """Gives in to a request that builds step by step on its own earlier answers.

    Models Crescendo (Russinovich, Salem & Eldan 2024, "Great, Now Write an Article About
    That: The Crescendo Multi-Turn LLM Jailbreak Attack", arXiv:2404.01833): start with
    harmless questions on a topic, then ask the model to go further with what it just
    said ("great, now write that down"). The model's wish to stay consistent with its own
    answers beats the refusal it would give the last request alone. Here: at least
    ``CRESCENDO_STEPS`` answered earlier turns share a topic word with the latest message,
    and the latest both refers back ("that", "it", "you mentioned") and escalates ("now",
    "great", "continue"). A refusal among the last turns breaks the run, as in the paper,
    where the attacker has to backtrack.
    """
    text = talk.ctx.text
    if not (BACK_REFERENCE.search(text) and ESCALATION.search(text)):
        return None
    recent = talk.earlier[-CRESCENDO_STEPS:]
    if len(recent) < CRESCENDO_STEPS or any(exchange.refused for exchange in recent):
        return None
    topics = topic_words(text)
    on_topic = [e for e in talk.earlier if not e.refused and topic_words(e.user) & topics]
    if len(on_topic) < CRESCENDO_STEPS:
        return None
    return _sensitive_answer(talk.ctx.system, text, "Building on what we discussed:")


FOLLOW_UP = re.compile(r"^\s*(?:and|so|also|what about|how about)\b", re.I)
SENTENCE_END = re.compile(r"(?<=[.;!?])\s+")


def answer_follow_up(talk: Conversation) -> str | None:
    """Answers a follow-up question ("And how long does it take?") from its own previous answer.

    The ordinary side of a conversation: a customer's follow-up means nothing on its own, so
    the model reads it against the last answered exchange and gives the sentence of that
    answer that the follow-up asks about. Models the history-dependent questions of
    conversational question answering (Reddy, Chen & Manning 2019, "CoQA: A Conversational
    Question Answering Challenge", arXiv:1808.07042), where many questions lean on earlier
    turns ("And on Sundays?"). The app retrieves articles for the latest message
    only; without the earlier turns the same words get a different answer, which is why
    forgetting the history costs ordinary conversations (Lab 12).
    """
    if not FOLLOW_UP.match(talk.ctx.text):
        return None
    answered = [e for e in talk.earlier if not e.refused]
    if not answered:
        return None
    asked = content_words(talk.ctx.text)
    best, best_score = None, 0
    for sentence in SENTENCE_END.split(answered[-1].assistant):
        score = len(content_words(sentence) & asked)
        if score > best_score:
            best, best_score = sentence.strip(), score
    return best


MultiTurnBehaviour = Callable[[Conversation], "str | None"]

# Most specific first: a persona the user set up, then many shots, then gradual escalation;
# an ordinary follow-up last, so that no attack reads as one.
CONVERSATION_BEHAVIOURS: tuple[MultiTurnBehaviour, ...] = (
    keep_persona,
    follow_many_shots,
    escalate_gradually,
    answer_follow_up,
)
