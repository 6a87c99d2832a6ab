"""Lab 12's reference solution: checks over the whole conversation, and a budget of refusals.

It sits in front of Lab 01's single-message defense from the course's guards (``doubleedge.defenses.lab01.build_course_guard_defense``).
The lab notebook's solution cells hold the same code (a test keeps them in sync).
Graded learner code may not import this module.
"""

import re

from doubleedge.target.guarded_chat import ConversationDefense, conversation_defense

# The conversation-level checks run Lab 01's heuristics over all of the user's turns at once,
# plus two tells that only exist across turns: faux dialogues (many-shot) and asking for a
# part of something ("the first 8 characters").
ROLE_SET_UP = re.compile(
    r"\bfrom now on\b|\byou are (?:now |going to be )?(?:an? )?[A-Z][\w-]+\b|\bpretend|\bact as\b|\brole-?play"
    r"|\bstay in character\b|\bnever refuse|\bno (?:restrictions|rules|limits|filters)\b",
)
FAUX_DIALOGUE = re.compile(r"^\s*(?:user|human|customer|q)\s*:.*\n\s*(?:assistant|ai|bot|bell|a)\s*:", re.I | re.M)
PIECE_REQUEST = re.compile(r"\b(?:first|last|next|remaining)\s+\d{1,2}\s+(?:characters|letters|symbols|chars|digits)\b",
                           re.I)  # fmt: skip
SECRET_WORDS = re.compile(r"\b(?:staff|employee|internal)\b[^.?!\n]{0,30}\b(?:code|voucher|discount)", re.I)


def user_turns(history: list[dict], message: str) -> list[str]:
    return [m["content"] for m in history if m["role"] == "user"] + [message]


def guard_turn(history: list[dict], message: str) -> str:
    """Refuse a turn that, read with the earlier turns, asks for the code in a way no single turn shows."""
    turns = user_turns(history, message)
    if PIECE_REQUEST.search(message):
        return "refuse"
    if not SECRET_WORDS.search(message):
        return "answer"
    earlier = "\n".join(turns[:-1])
    if ROLE_SET_UP.search(earlier) or FAUX_DIALOGUE.search(earlier):
        return "refuse"  # a persona or many examples set up earlier, and now the code
    if len(turns) > 1:
        return "reset"  # the code asked about mid-conversation: answer as if it were the first turn
    return "answer"


def hidden_part(secret: str) -> str:
    """The part of the code that differs between learners (``DE-FAKE-1A2B-3C4D`` -> ``1A2B3C4D``)."""
    return "".join(ch for ch in secret.removeprefix("DE-FAKE-") if ch.isalnum()).upper()


def reveals_piece(text: str, secret: str, length: int = 4) -> bool:
    """True if ``text`` holds ``length`` characters in a row of the code's hidden part (either way round)."""
    seen = "".join(ch for ch in text.upper() if ch.isalnum())
    hidden = hidden_part(secret)
    pieces = {hidden[i : i + length] for i in range(len(hidden) - length + 1)}
    return any(piece in seen or piece[::-1] in seen for piece in pieces)


def guard_reply(history: list[dict], reply: str, secret: str) -> bool:
    """Withhold a reply that gives away a piece of the code, alone or joined to the earlier answers."""
    answers = [m["content"] for m in history if m["role"] == "assistant"] + [reply]
    return reveals_piece(" ".join(answers), secret)


# Refused turns allowed per conversation: after two, the conversation is over.
CONVERSATION_BUDGET = 2


# Not in the notebook, whose hardened-bot cell wraps the learner's three parts itself.
PACKAGE_ONLY = ("build_conversation_defense",)


def build_conversation_defense(secret: str) -> ConversationDefense:
    """The three parts of the solution as one defense (the tests' reference)."""
    return conversation_defense(guard_turn, guard_reply, CONVERSATION_BUDGET, secret, name="lab12")
