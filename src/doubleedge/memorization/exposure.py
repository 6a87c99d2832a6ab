"""Measuring memorization: the exposure metric of Carlini et al. 2019, extraction, and the
price of hardening (perplexity on clean text).

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


# Both functions below give, bit for bit, the numbers of their first versions, which ran every
# sequence through the model whole and the clean text one chunk at a time (``share_prefix=False``,
# ``batch=1``; tests/memorization/test_corpus_and_model.py compares them): the work is shared or
# batched only where the matrix products keep their shapes, so no exposure or grade moves.
PREFIX_COPIES = 8  # rows of the shared prefix's pass (a single row would take torch's one-row path)
WHOLE_BATCH = 500  # sequences per forward pass when the prefix is not shared


@torch.no_grad()
def log_perplexities(model: CharLM, prefix: str, secrets: list[str], *, share_prefix: bool = True) -> list[float]:
    """-log2 p(secret | prefix) for each secret (all secrets have the same length). The prefix is
    run once for all secrets when it fills the model's context with them, as every canary's does."""
    length = len(secrets[0])
    context = encode(prefix)[-(model.config.n_ctx - length) :] if length < model.config.n_ctx else []
    if not context:
        raise ValueError("a prefix of at least one character must fit before the secret")
    ids = torch.tensor([context + encode(s) for s in secrets])
    with deterministic():
        if share_prefix and ids.shape[1] == model.config.n_ctx:
            picked = _after_shared_prefix(model, ids, len(context))
        else:
            picked = torch.cat([F.log_softmax(model(batch[:, :-1]), dim=-1).gather(-1, batch[:, 1:, None])[..., 0]
                                for batch in ids.split(WHOLE_BATCH)])[:, len(context) - 1 :]  # fmt: skip
        totals = picked.sum(dim=1)
    return [float(-v / math.log(2)) for v in totals]


def _after_shared_prefix(model: CharLM, ids: torch.Tensor, shared: int) -> torch.Tensor:
    """The log-probabilities of each row's characters after its first ``shared`` ones, which
    every row has in common (an exposure's candidates: most of each sequence). The common part
    runs through the model once, in the frame of one whole row, so that its products keep their
    shapes; then only each row's own characters run, attending to its keys and values. About 9
    times less work for a lab canary."""
    x = model.embed(ids[:1, :-1].expand(PREFIX_COPIES, -1))
    past = []
    for block in model.blocks:
        x, keys_values = block.extend(x)
        past.append(tuple(t[:1, :, :shared] for t in keys_values))
    first = F.log_softmax(model.lm_head(model.ln_f(x)), dim=-1)[0, shared - 1][ids[:, shared]]
    y = model.embed(ids[:, shared:-1], start=shared)
    for block, keys_values in zip(model.blocks, past, strict=True):
        y, _ = block.extend(y, keys_values)
    logprobs = F.log_softmax(model.lm_head(model.ln_f(y)), dim=-1)
    return torch.cat([first[:, None], logprobs.gather(-1, ids[:, shared + 1 :, None])[..., 0]], dim=1)


@torch.no_grad()
def perplexity(model: CharLM, text: str, seq_len: int = 64, *, batch: int = 128) -> float:
    """Per-character perplexity of ``model`` on ``text`` (lower is better), over consecutive
    chunks of ``seq_len`` characters, ``batch`` full chunks per forward pass."""
    ids = torch.tensor(encode(text))
    chunks = [ids[start : start + seq_len + 1] for start in range(0, len(ids) - 1, seq_len)]
    chunks = [c for c in chunks if len(c) >= 2]
    full = [c for c in chunks if len(c) == seq_len + 1]  # all but perhaps the last
    total = 0.0
    with deterministic():
        groups = [torch.stack(full[i : i + batch]) for i in range(0, len(full), batch)] + [c[None] for c in chunks[len(full) :]]
        for group in groups:
            for chunk, logits in zip(group, model(group[:, :-1]), strict=True):
                total += float(F.cross_entropy(logits, chunk[1:], reduction="sum"))
    return math.exp(total / sum(len(c) - 1 for c in chunks))


@dataclass(frozen=True)
class Exposure:
    canary_id: str
    exposure: float  # bits, from the normal fit, capped at space_bits
    sampled_rank: int  # 1 + the number of sampled candidates the model prefers to the canary
    samples: int
    space_bits: float


def candidates(canary: Canary, samples: int = SAMPLES, seed: int = 0) -> list[str]:
    """The secret, then the random sample of other secrets it is ranked against."""
    rng = random.Random(f"exposure-{canary.id}-{seed}")
    return [canary.secret, *(canary.candidate(rng) for _ in range(samples))]


def measure_exposure(model: CharLM, canary: Canary, samples: int = SAMPLES, seed: int = 0) -> Exposure:
    scores = log_perplexities(model, canary.prefix, candidates(canary, samples, seed))
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
