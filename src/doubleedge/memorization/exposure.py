"""Measuring memorization: the exposure metric of Carlini et al. 2019, and extraction.

For a canary with secret ``s`` drawn from a space ``R`` of possible secrets, rank every
candidate ``r`` in ``R`` by the model's log-perplexity of ``prefix + r``. Then

    exposure(s) = log2 |R| - log2 rank(s)

A secret the model never saw ranks somewhere in the middle (exposure about 1 bit); a
memorized secret ranks first (exposure log2 |R|, e.g. 26.6 bits for 8 digits).
``R`` is far too large to score whole, so, as in the paper (section 4.3), we score a
random sample of candidates, fit a normal distribution to their log-perplexities and
read the canary's rank off its tail: ``exposure = -log2 P(X <= x_canary)``, capped at
``log2 |R|``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from doubleedge.memorization.corpus import Canary
from doubleedge.memorization.model import CharLM, encode
from doubleedge.memorization.train import deterministic

SAMPLES = 1000


def exposure_from_rank(rank: int, space_size: int) -> float:
    """Carlini et al.'s exposure: log2 |R| - log2 rank (rank 1 = the most likely secret)."""
    if not 1 <= rank <= space_size:
        raise ValueError("rank must be between 1 and the size of the space")
    return math.log2(space_size) - math.log2(rank)


@torch.no_grad()
def log_perplexities(model: CharLM, prefix: str, secrets: list[str], batch: int = 500) -> list[float]:
    """-log2 p(secret | prefix) for each secret (all secrets have the same length)."""
    context = encode(prefix)[-(model.config.n_ctx - len(secrets[0])) :]
    out: list[float] = []
    with deterministic():
        for start in range(0, len(secrets), batch):
            ids = torch.tensor([context + encode(s) for s in secrets[start : start + batch]])
            logprobs = F.log_softmax(model(ids[:, :-1]), dim=-1)
            targets = ids[:, 1:]
            picked = logprobs.gather(-1, targets[..., None])[..., 0][:, len(context) - 1 :]
            out += [float(-v / math.log(2)) for v in picked.sum(dim=1)]
    return out


@dataclass(frozen=True)
class Exposure:
    canary_id: str
    exposure: float  # bits, from the normal fit, capped at space_bits
    sampled_rank: int  # 1 + the number of sampled candidates the model prefers to the canary
    samples: int
    space_bits: float


def measure_exposure(model: CharLM, canary: Canary, samples: int = SAMPLES, seed: int = 0) -> Exposure:
    rng = random.Random(f"exposure-{canary.id}-{seed}")
    candidates = [canary.candidate(rng) for _ in range(samples)]
    scores = log_perplexities(model, canary.prefix, [canary.secret, *candidates])
    target, others = scores[0], scores[1:]
    mean = sum(others) / len(others)
    std = math.sqrt(sum((x - mean) ** 2 for x in others) / (len(others) - 1)) or 1e-9
    tail = 0.5 * math.erfc((mean - target) / (std * math.sqrt(2)))  # P(X <= target) under the fit
    bits = canary.space_bits if tail <= 0 else min(canary.space_bits, max(0.0, -math.log2(tail)))
    rank = 1 + sum(1 for x in others if x < target)
    return Exposure(canary.id, bits, rank, samples, canary.space_bits)


def extract_greedy(model: CharLM, prefix: str, length: int) -> str:
    """The simplest extraction attack: let the model complete the known prefix."""
    return model.greedy(prefix, length)
