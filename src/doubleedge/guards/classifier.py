"""A learned injection detector: naive Bayes over words and word pairs.

The same idea as the fine-tuned classifiers shipped as "prompt guards" (e.g. Meta's
Prompt Guard, ProtectAI's deberta injection model), shrunk to something you can read
in a minute and train in a millisecond. It generalizes beyond fixed patterns, and
it also blocks ordinary questions that merely sound like attacks: measure both.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cache
from importlib import resources

from doubleedge.guards.base import Guard, Verdict

TOKEN = re.compile(r"[a-z0-9']+")


def features(text: str) -> list[str]:
    words = TOKEN.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


@cache
def training_set() -> tuple[tuple[str, str], ...]:
    raw = resources.files("doubleedge.data").joinpath("injection_train.jsonl").read_text("utf-8")
    return tuple((r["text"], r["label"]) for r in map(json.loads, raw.splitlines()) if r)


class NaiveBayes:
    """Multinomial naive Bayes with add-one smoothing, two classes: attack and benign."""

    def __init__(self, examples: tuple[tuple[str, str], ...]) -> None:
        self.counts = {"attack": Counter(), "benign": Counter()}
        docs = Counter(label for _, label in examples)
        for text, label in examples:
            self.counts[label].update(features(text))
        self.vocabulary = set(self.counts["attack"]) | set(self.counts["benign"])
        self.prior = {label: math.log(docs[label] / len(examples)) for label in self.counts}
        self.totals = {label: sum(c.values()) + len(self.vocabulary) for label, c in self.counts.items()}

    def attack_probability(self, text: str) -> float:
        scores = dict(self.prior)
        for feature in features(text):
            if feature in self.vocabulary:
                for label in scores:
                    scores[label] += math.log((self.counts[label][feature] + 1) / self.totals[label])
        top = max(scores.values())
        exp = {label: math.exp(score - top) for label, score in scores.items()}
        return exp["attack"] / sum(exp.values())


@cache
def default_model() -> NaiveBayes:
    return NaiveBayes(training_set())


class InjectionClassifier(Guard):
    """Blocks messages the classifier scores as attacks with probability >= ``threshold``."""

    name = "injection_classifier"

    def __init__(self, threshold: float = 0.9, model: NaiveBayes | None = None) -> None:
        if not 0 < threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        self.threshold = threshold
        self.model = model or default_model()

    def scan(self, text: str) -> Verdict:
        p = self.model.attack_probability(text)
        return (
            self.block(text, f"attack probability {p:.2f}", risk=p) if p >= self.threshold else Verdict(True, text, p)
        )
