"""Lab 10's ladder: the unhardened bot, the defense levels L1 to L4, and L5 above them.

L5 keeps everything L4 has (the hardened prompt, the input checks and the learned
classifier, the output checks) and sharpens the output check: it looks for the part of the
code that differs between learners, not the whole code, so a reply that gives away the code
minus its public ``DE-FAKE-`` prefix, or that part encoded, is stopped too.
"""

from __future__ import annotations

from doubleedge.defenses.lab01 import leaks_secret
from doubleedge.defenses.levels import LEVELS, build_level
from doubleedge.guards import FunctionGuard
from doubleedge.target import Defense

PUBLIC_PREFIX = "DE-FAKE-"  # every learner's code starts with it (doubleedge.target.secrets)
RUNGS = {"L0": "the unhardened bot", **LEVELS, "L5": "+ an output check for the code's private part"}


def private_part(secret: str) -> str:
    """What tells one learner's code from another's: the code without its public prefix."""
    return secret.removeprefix(PUBLIC_PREFIX)


def leaks_private_part(reply: str, secret: str) -> bool:
    """The private part in any form the whole-code check knows (plain, spaced, reversed, encoded)."""
    return leaks_secret(reply, private_part(secret))


def build_rung(name: str, secret: str) -> Defense:
    """The defense of one rung of the ladder, by name (``L0`` to ``L5``)."""
    if name not in RUNGS:
        raise ValueError(f"unknown level {name!r}; the ladder has {', '.join(RUNGS)}")
    if name == "L0":
        return Defense(name="L0")
    if name in LEVELS:
        return build_level(int(name[1:]), secret)
    top = build_level(4, secret)
    check = FunctionGuard(lambda reply: leaks_private_part(reply, secret), name="leaks_private_part")
    return Defense(name="L5", system_prompt=top.system_prompt, input_guards=top.input_guards,
                   output_guards=[check, *top.output_guards])  # fmt: skip
