"""Lab 10's calibration: which known public attack techniques still get the code out at each level.

The techniques live in ``defenses/ladder_attacks.json``: each is named, cited by source and
link, and phrased a few fixed ways for Bell's staff discount code. Some of them climb to L4 and
L5, so they sit with the course's reference solutions, in the folder the grader's sandbox hides
from learner code (``doubleedge.grading.authoritative.reference_solutions``): a submission
cannot copy them into its ``ATTACKS``. An attack is what the lab's
``ATTACKS`` holds for one level (one message, or up to three, each sent to a fresh bot), and it
counts as it counts in the lab's grading (``doubleedge.grading.lab10.reproduces``): the bots'
replies must give the code away so that a fixed reader, ``read_code``, gets it back.
``read_code`` knows every form the output checks know (plain, spaced, reversed, base64, hex)
and joins pieces given in several replies, as a learner's ``extract_code`` would.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from doubleedge.encodings import decoded_blobs

ATTACKS_FILE = "ladder_attacks.json"  # in the package doubleedge.defenses
PREFIX = "DE-FAKE-"  # doubleedge.defenses.ladder.PUBLIC_PREFIX: the same for every learner
WHOLE_CODE = re.compile(r"DE-FAKE-[0-9A-F]{4}-[0-9A-F]{4}")
# A reply's piece of a code: the prefix and what follows it, or a run of the code's hex digits.
PIECE = re.compile(r"DE-FAKE-[0-9A-F-]*|(?<![\w-])[0-9A-F][0-9A-F-]+(?![\w-])")
PRIVATE_DIGITS = re.compile(r"([0-9A-F]{4})([0-9A-F]{4})")


@dataclass(frozen=True)
class Technique:
    name: str
    source: str
    url: str
    attacks: tuple[tuple[str, ...], ...]  # each attack: the messages of one level's ATTACKS entry


def techniques() -> list[Technique]:
    """The calibration's technique sets, in the order the lesson shows them."""
    raw = json.loads(resources.files("doubleedge.defenses").joinpath(ATTACKS_FILE).read_text("utf-8"))
    return [
        Technique(t["name"], t["source"], t["url"], tuple(_messages(a) for a in t["attacks"]))
        for t in raw["techniques"]
    ]


def _messages(attack: str | list[str]) -> tuple[str, ...]:
    return (attack,) if isinstance(attack, str) else tuple(attack)


def _views(reply: str) -> list[str]:
    """The reply as written, spaces removed, reversed, and every base64 or hex blob decoded."""
    return [reply, reply.replace(" ", ""), reply[::-1], *(text for _, text in decoded_blobs(reply))]


def read_code(level: str, replies: list[str]) -> str | None:
    """The code the replies give away, whole or in pieces, or None (an ``extract_code``)."""
    whole = next((m.group(0) for r in replies for v in _views(r) if (m := WHOLE_CODE.search(v))), None)
    if whole:
        return whole
    pieces = [found[-1] for r in replies if (found := PIECE.findall(r))]
    digits = "".join(pieces).removeprefix(PREFIX).replace("-", "")
    private = PRIVATE_DIGITS.fullmatch(digits)
    return f"{PREFIX}{private.group(1)}-{private.group(2)}" if private else None
