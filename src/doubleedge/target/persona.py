"""Who a chat bot answers for, as data: the business's persona, its people and its help articles.

One :class:`~doubleedge.target.bot.SupportBot` pipeline serves every business in the course:
Bellwether Bikes' Bell (``bot.BELL``) and, in the capstone, Larkspur Travel's Wren
(``capstone.WREN``). A persona holds only what differs between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from doubleedge.retrieval import Article
from doubleedge.target.records import Customer


class ChatBot(Protocol):
    """What the HTTP server and the scans need of a target: a reply, and the defense's name.

    A bot whose ``reply`` also takes ``history`` (the conversation so far, a list of user and
    assistant ``Message``s) keeps conversations: the server then offers sessions.
    """

    defense: Any  # has a ``name``

    def reply(self, message: str, *, documents: Sequence[Any] = (), customer: str | None = None) -> str: ...


@dataclass(frozen=True)
class Persona:
    name: str  # who answers, e.g. "Bell"
    system_prompt: str  # the unhardened app's prompt template ({secret}, {canary})
    people: Callable[[str], tuple[Customer, ...]]  # the business's customer records, for a learner's secret
    noun: str  # what a customer is called in errors: "customer", "traveller"
    code_check: str  # what the app adds when it checks a typed code itself; "{code}" is the code
    blocked_reply: str  # the reply when a guard blocks
    articles: Sequence[Article] | None = None  # its help articles; None: Bellwether's help centre

    def find(self, secret: str, person: str) -> Customer:
        people = self.people(secret)
        for record in people:
            if record.id == person:
                return record
        raise ValueError(f"no {self.noun} {person!r}; known: {', '.join(p.id for p in people)}")
