"""A conversation-level defense around a support bot: what Lab 12's learner writes plugs in here.

The support bot's guards (``Defense``) see one message at a time. A multi-turn attack spreads
its request over the conversation, so each message passes. This wrapper gives the learner the
whole conversation at two points of every turn, and a budget:

* ``guard_turn(history, message)`` before the bot answers: ``"answer"`` (go on), ``"refuse"``
  (the blocked reply), or ``"reset"`` (answer this message as if the conversation had just
  begun: the model does not see the earlier turns);
* ``guard_reply(history, reply)`` after: ``True`` withholds the reply, seen together with the
  earlier ones (a secret given away in pieces, one per turn);
* ``budget``: after that many refused turns the conversation is over: every later turn is
  refused (an attacker who keeps probing has to start a new conversation, and lose the
  history the attack built).

``history`` is the conversation so far as plain data (``[{"role": "user", "content": ...},
{"role": "assistant", ...}, ...]``, oldest first), so the same functions work in the notebook
and over the grader's pipe. A learner function that fails refuses the turn (fail closed) and
is remembered in ``failures``: the grader fails a defense that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doubleedge.models.base import Message
from doubleedge.target.bot import BLOCKED_REPLY, SupportBot, check_history

DECISIONS = ("answer", "refuse", "reset")
MAX_FAILURES_KEPT = 20

GuardTurn = Callable[[list[dict], str], str]
GuardReply = Callable[[list[dict], str], bool]


def as_data(history: Sequence[Message]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in history]


def refusals(history: Sequence[Message]) -> int:
    """Turns of the conversation so far that got the blocked reply."""
    return sum(1 for m in history if m.role == "assistant" and m.content == BLOCKED_REPLY)


@dataclass(frozen=True)
class ConversationDefense:
    """The learner's conversation-level hardening (see the module docstring)."""

    name: str = "conversation"
    guard_turn: GuardTurn | None = None
    guard_reply: GuardReply | None = None
    budget: int | None = None  # refused turns allowed before the conversation ends; None: no budget

    def __post_init__(self) -> None:
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget < 1):
            raise ValueError("budget must be a positive whole number of refused turns, or None")


def conversation_defense(guard_turn: GuardTurn | None, guard_reply: Callable[[list[dict], str, str], bool] | None,
                         budget: object, secret: str, *, name: str = "conversation") -> ConversationDefense:  # fmt: skip
    """The learner's three names as a defense: ``guard_reply(history, reply, secret)`` gets the code it protects."""
    if guard_turn is not None and not callable(guard_turn):
        raise ValueError("guard_turn must be a function: guard_turn(history, message) returns a decision")
    if guard_reply is not None and not callable(guard_reply):
        raise ValueError("guard_reply must be a function: guard_reply(history, reply, secret) returns True or False")
    check = None if guard_reply is None else (lambda history, reply: guard_reply(history, reply, secret))
    return ConversationDefense(name=name, guard_turn=guard_turn, guard_reply=check, budget=budget)


class GuardedChat:
    """``bot`` (a support bot, with its own single-message defense) behind a ConversationDefense.

    It answers like the bot (``reply(message, history=...)``), so the HTTP server gives it
    sessions and the multi-turn scan can play conversations against it."""

    def __init__(self, bot: SupportBot, conversation: ConversationDefense) -> None:
        self.bot, self.conversation = bot, conversation
        self.defense = conversation  # what the server's banner and the scans name
        self.failures: list[str] = []

    @property
    def secret(self) -> str:
        return self.bot.secret

    def reply(self, message: str, *, documents: Sequence = (), customer: str | None = None,
              history: Sequence[Message] = ()) -> str:  # fmt: skip
        history = check_history(history)
        budget = self.conversation.budget
        if budget is not None and refusals(history) >= budget:
            return BLOCKED_REPLY
        decision = self._decide(history, message)
        if decision == "refuse":
            return BLOCKED_REPLY
        seen = [] if decision == "reset" else history
        reply = self.bot.reply(message, documents=documents, customer=customer, history=seen)
        if reply != BLOCKED_REPLY and self._withhold(history, reply):
            return BLOCKED_REPLY
        return reply

    def _decide(self, history: list[Message], message: str) -> str:
        if self.conversation.guard_turn is None:
            return "answer"
        try:
            decision = self.conversation.guard_turn(as_data(history), message)
        except Exception as exc:  # learner code: fail closed, and remember it
            self._failed(f"guard_turn raised {type(exc).__name__}")
            return "refuse"
        if decision not in DECISIONS:
            # its type only: the value may quote the conversation (held-out text, when grading)
            self._failed(f"guard_turn returned a {type(decision).__name__} that is not one of {', '.join(DECISIONS)}")
            return "refuse"
        return decision

    def _withhold(self, history: list[Message], reply: str) -> bool:
        if self.conversation.guard_reply is None:
            return False
        try:
            withhold = self.conversation.guard_reply(as_data(history), reply)
        except Exception as exc:  # learner code: fail closed, and remember it
            self._failed(f"guard_reply raised {type(exc).__name__}")
            return True
        if not isinstance(withhold, bool):
            self._failed(f"guard_reply returned {type(withhold).__name__}, not True or False")
            return True
        return withhold

    def _failed(self, what: str) -> None:
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(what)


def play(bot: SupportBot | GuardedChat, turns: Sequence[str]) -> list[str]:
    """Play ``turns`` as one conversation with ``bot`` (the history the server's sessions keep); the replies.
    A GuardedChat answers as a SupportBot does, so the bot's own way of playing a conversation serves both."""
    return SupportBot.converse(bot, turns)
