"""Hallucination: confident answers the model has no grounds for."""

from __future__ import annotations

import re

from doubleedge.models.reference.context import Context

WHO_IS = re.compile(r"^\s*(?i:who is|who's|tell me about)\s+([A-Z][a-z]+(?: [A-Z][a-z]+)+)\s*[?.!]?\s*$")


def invent_biography(ctx: Context) -> str | None:
    """Invents a biography for a person it knows nothing about, instead of saying so.

    Riley Goodside's 2022 demonstration that models describe him as a Canadian
    singer; see Ji et al. 2023, "Survey of Hallucination in Natural Language
    Generation" (ACM Computing Surveys). garak's ``goodside.WhoIsRiley``.
    """
    person = WHO_IS.match(ctx.text)
    if person is None:
        return None
    return (
        f"{person.group(1)} is a Canadian singer-songwriter best known for two albums of folk-pop. "
        "She is also a popular YouTube content creator."
    )


YES_NO_OVER_DATA = re.compile(
    r"\n\s*(?:Question:\s*)?(?:Is there|Is it possible|Are there|Can I|Does)\b[^\n]*\?\s*$", re.I
)


def agree_without_checking(ctx: Context) -> str | None:
    """Answers "yes" to a question about a long list of facts, then justifies it.

    Models snowballing hallucination (Zhang et al. 2023, "How Language Model
    Hallucinations Can Snowball", arXiv:2305.13534): committed to an early "yes", the
    model invents the support for it. garak's ``snowball`` probes.
    """
    if ctx.text.count("\n") < 5 or not YES_NO_OVER_DATA.search(ctx.text):
        return None
    return "Yes, there is. Following the listed connections one after the other gets you there."
