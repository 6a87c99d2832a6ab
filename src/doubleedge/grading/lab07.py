"""Lab 07's checks, shared by the notebook's tests (a preview in the learner's kernel)
and the grader (the authoritative score, computed in a fresh process).

Every graded number comes from models that the *checker* trains, seeded and
deterministic, on a corpus with the held-out canaries of ``graders/heldout/lab07.jsonl``
(``canaries = load_canaries(get_lab("07").heldout_attacks)``). What the grader calls,
per test cell ``grade_id``:

* ``test_exposure_from_rank`` (solution cell ``exposure``):
  ``check_exposure_from_rank(function("exposure_from_rank"))``; calls it with ints.
* ``test_extraction`` (solution cell ``extraction``): the learner's
  ``extract(model, prefix: str, length: int) -> str`` needs a model object, so:

  1. checker: ``attack = train_attack_model(canaries, baseline)`` (an ``AttackRun``: the
     model the grader trained once for the whole class, ``save_attack_model``, passed in as
     the baseline, with its perplexity on clean text measured once too; 30 to 60 s on one core to train when it is missing) and ``save_pretrained(attack.model, scratch / "attack-model")``
     (``doubleedge.memorization.model``; safetensors, readable by the learner's process);
  2. learner's process: ``run_extraction(extract, scratch / "attack-model", targets)``
     with ``targets = extraction_targets(canaries)`` (JSON: id, prefix, length) returns
     ``{canary_id: text}`` (JSON);
  3. checker: ``judge_extraction(canaries, extracted)``.

  (labs/lab07_memorization/judge.py asks only for the canaries the check counts, one call each, and first
  tries ``extract`` on an untrained model so that the notebook's stub costs no training.)

  ``check_extraction(extract, canaries, attack)`` does all three in one process.
* ``test_scrub`` (solution cell ``hardening``): ``check_scrub(function("scrub"))``; calls
  it with strings.
* ``test_hardened_exposure`` and ``test_hardened_perplexity`` (solution cell ``hardening``):
  checker: ``docs = attack_corpus(canaries)``; learner's process:
  ``harden_corpus(docs)`` (a JSON list of strings both ways, about 100 kB); checker:
  ``result = evaluate_hardening(hardened_docs, value("TRAINING"), canaries, attack)``
  (trains one more model: 30 s, up to 2 min with DP-SGD), then
  ``result.exposure_check()`` and ``result.perplexity_check()``; ``result.metrics()``
  for the record.

Each check returns ``Check(passed, reason)``; reasons never quote held-out canaries.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from doubleedge.grading.checks import Check
from doubleedge.memorization.corpus import Canary, clean_heldout_text, lab_canaries, load_canaries, make_corpus
from doubleedge.memorization.exposure import measure_exposure, perplexity
from doubleedge.memorization.model import CharLM, load_pretrained
from doubleedge.memorization.train import (
    TrainConfig,
    load_trained,
    measured_on,
    save_trained,
    train,
    training_key,
)

LAB = "07"
CORPUS_DOCUMENTS = 400
CORPUS_SEED = 70
# Extraction: recover at least one held-out canary inserted this many times or more.
EXTRACT_MIN_COUNT = 64
# Hardening. Exposure is -log2 of the share of candidates the model prefers to the secret,
# so for a canary the model never saw, P(exposure >= x) is about 2**-x: over 21 held-out
# canaries the highest reaches 8 bits in about 8% of runs (a reference run measured 7.3),
# 12 bits in 0.5%; the reference pipeline's highest is 3.5. Unhardened, canaries inserted
# 16 times reach 9 to 32 bits and those inserted 64 times 21 to 26, and every held-out
# format has a canary above 17 bits (bench/labs_model.py): a scrubber that misses one
# format leaves canaries far above 12. So no held-out canary
# may reach 12 bits: the secret among the top 1/4096 of candidates.
EXPOSURE_THRESHOLD = 12.0
# Utility: per-character perplexity on clean held-out transcripts may rise at most 25%
# over the unhardened model trained in the same grading run (scrubbing and deduplication
# cost about 0%; DP-SGD at noise 1.0 on this tiny data set costs 700%).
PERPLEXITY_RATIO = 1.25
# Bounds on TRAINING, so that one grading run stays within a few minutes.
MAX_STEPS, MAX_DP_STEPS = 1000, 600

__all__ = [
    "EXPOSURE_THRESHOLD",
    "PERPLEXITY_RATIO",
    "AttackRun",
    "Check",
    "Hardening",
    "attack_corpus",
    "check_exposure_from_rank",
    "check_extraction",
    "check_scrub",
    "evaluate_hardening",
    "extraction_targets",
    "grading_canaries",
    "judge_extraction",
    "run_extraction",
    "save_attack_model",
    "train_attack_model",
    "training_config",
]

# --- exposure ---------------------------------------------------------------------------

RANK_CASES = [(1, 1024, 10.0), (1024, 1024, 0.0), (32, 1024, 5.0), (1, 10**8, math.log2(10**8)), (3, 12, 2.0)]


def check_exposure_from_rank(exposure_from_rank: Callable[[int, int], float]) -> Check:
    for rank, size, expected in RANK_CASES:
        try:
            returned = exposure_from_rank(rank, size)
        except Exception as exc:  # learner code: report, never crash the grader
            return Check(False, f"exposure_from_rank raised {type(exc).__name__} for rank {rank} of {size}")
        try:
            got = float(returned)
        except (TypeError, ValueError):
            return Check(False, f"exposure_from_rank must return a number of bits, not {type(returned).__name__}")
        if not math.isclose(got, expected, abs_tol=1e-6):
            return Check(False, f"exposure_from_rank({rank}, {size}) should be {expected:.4g}, not {got:.4g}")
    return Check(True)


# --- the attack -------------------------------------------------------------------------


def attack_corpus(canaries: dict[Canary, int]) -> list[str]:
    return make_corpus(canaries, documents=CORPUS_DOCUMENTS, seed=CORPUS_SEED)


@dataclass
class AttackRun:
    model: CharLM
    perplexity: float  # on clean held-out text: the utility reference for hardening
    seconds: float


def train_attack_model(canaries: dict[Canary, int], trained: Path | None = None) -> AttackRun:
    """The unhardened model, trained on the corpus with ``canaries`` inserted.

    ``trained``: the file ``save_attack_model`` wrote once for a whole class (the grader's
    baseline), used when it was trained on these canaries; otherwise the model is trained."""
    return _attack_model(tuple(canaries.items()), trained)


def save_attack_model(canaries: dict[Canary, int], path: Path) -> Path:
    """The attack model and its perplexity on clean text, measured once for the whole class."""
    result = train(attack_corpus(canaries), TrainConfig())
    return save_trained(result, path, {"perplexity": perplexity(result.model, clean_heldout_text())})


@functools.lru_cache(maxsize=2)
def _attack_model(canaries: tuple[tuple[Canary, int], ...], trained: Path | None) -> AttackRun:
    # Cached: the notebook's preview tests and the grader ask for it more than once.
    docs, config = attack_corpus(dict(canaries)), TrainConfig()
    result, measured = None, {}
    if trained is not None:
        with contextlib.suppress(ValueError, OSError):  # not the grader's model for these canaries
            result = load_trained(trained, training_key(docs, config))
            measured = measured_on(trained)
    result = result or train(docs, config)
    reference = measured.get("perplexity") or perplexity(result.model, clean_heldout_text())
    return AttackRun(result.model, reference, result.seconds)


# The notebook's DP-SGD run (its ``dp`` cell), which the lesson's figures show too.
DP_TRAINING = {"steps": 300, "noise_multiplier": 1.0, "max_grad_norm": 1.0}

# What the notebook's cells that retrain and re-scan the hardened model print in the grader's
# notebook kernel (selfcheck.graded_kernel): the checker trains that model on the held-out canaries.
GRADER_RETRAINS = ("skipped in the grader's run of your notebook: the grader trains your hardened model "
                   "itself, on its held-out canaries, and measures it (see your grade)")  # fmt: skip


def public_trainings() -> list[tuple[list[str], TrainConfig]]:
    """The models a graded kernel trains on the lab's public corpus (the notebook's ``run`` cell;
    its ``dp`` cell is one that a graded kernel skips): the same for every learner, so the
    grader trains them once (see judge.kernel_cache)."""
    corpus = attack_corpus(lab_canaries())  # the notebook's corpus: the same documents and seed
    return [(corpus, TrainConfig())]


def grading_canaries(heldout: str | Path | None = None) -> dict[Canary, int]:
    """The held-out canaries if their file is there (the grader's copy), else the lab's own."""
    if heldout is None:
        from doubleedge.labs import get_lab

        heldout = get_lab(LAB).heldout_attacks
    return load_canaries(heldout) if Path(heldout).is_file() else lab_canaries()


def extraction_targets(canaries: dict[Canary, int]) -> list[dict]:
    return [{"id": c.id, "prefix": c.prefix, "length": len(c.secret)} for c, n in canaries.items()]


def run_extraction(extract: Callable, model: CharLM | str | Path, targets: list[dict]) -> dict[str, str]:
    """In the learner's process: ``extract(model, prefix, length)`` for each target."""
    if not isinstance(model, CharLM):
        model = load_pretrained(model)
    found = {}
    for target in targets:
        try:
            text = extract(model, target["prefix"], target["length"])
        except Exception as exc:  # learner code
            text = f"<{type(exc).__name__}>"
        found[target["id"]] = text if isinstance(text, str) else repr(text)
    return found


def judge_extraction(canaries: dict[Canary, int], extracted: dict[str, str]) -> Check:
    hit = [c for c, n in canaries.items() if n >= EXTRACT_MIN_COUNT and c.secret in str(extracted.get(c.id, ""))]
    if hit:
        return Check(True)
    return Check(False, f"extract recovered no canary inserted {EXTRACT_MIN_COUNT} times from the unhardened model")


def check_extraction(extract: Callable, canaries: dict[Canary, int], attack: AttackRun) -> Check:
    return judge_extraction(canaries, run_extraction(extract, attack.model, extraction_targets(canaries)))


# --- hardening --------------------------------------------------------------------------

SCRUB_SECRETS = [
    ("a card with spaces", "my card number is 4000 0000 1234 5678, thanks", "5678"),
    ("a card with dashes", "card 4000-0000-8765-4321 please", "4321"),
    ("a card without separators", "charge 4111111111119876 today", "9876"),
    ("a prefixed API key", "my api key is sk_fake_de_9f8e7d6c5b4a", "9f8e7d6c5b4a"),
    ("a course-style key", "the key is DE-FAKE-KEY-7A7B7C7D", "7A7B7C7D"),
    ("a long token", "token: Q9X2M7K4P8L3R6T1W5", "Q9X2M7K4P8L3R6T1W5"),
]
SCRUB_KEEP = [
    ("an error code", "Error E21 is a speed sensor fault.", "E21"),
    ("a warranty", "The Volt 2 battery has a two year warranty.", "Volt 2 battery"),
    ("a return window", "Returns are free within 30 days.", "30 days"),
    ("an order number", "Your order 48213 ships on Monday.", "48213"),
]


def check_scrub(scrub: Callable[[str], str]) -> Check:
    for label, text, secret in SCRUB_SECRETS + SCRUB_KEEP:
        try:
            out = scrub(text)
        except Exception as exc:  # learner code
            return Check(False, f"scrub raised {type(exc).__name__} on {label}")
        if not isinstance(out, str):
            return Check(False, "scrub must return a string")
        keep = (label, text, secret) in SCRUB_KEEP
        if keep and secret not in out:
            return Check(False, f"scrub removed {label}, which is not a secret")
        if not keep and secret in out:
            return Check(False, f"scrub left {label} in the text")
    return Check(True)


def training_config(value: object) -> TrainConfig:
    """``TRAINING`` as a TrainConfig; ValueError if it breaks the lab's bounds."""
    if not isinstance(value, dict):
        raise ValueError("TRAINING must be a dict")
    config = TrainConfig.from_dict(value)
    dp = config.noise_multiplier is not None
    limit = MAX_DP_STEPS if dp else MAX_STEPS
    if not 100 <= config.steps <= limit:
        raise ValueError(f"steps must be between 100 and {limit}")
    if not 8 <= config.batch_size <= 64 or not 0 < config.lr <= 0.01:
        raise ValueError("batch_size must be 8 to 64 and lr in (0, 0.01]")
    if dp and not (0 <= config.noise_multiplier <= 10 and config.max_grad_norm > 0):
        raise ValueError("noise_multiplier must be 0 to 10 and max_grad_norm positive")
    return config


@dataclass
class Hardening:
    exposures: dict[str, float]
    perplexity: float
    reference_perplexity: float
    seconds: float
    epsilon: float | None

    @property
    def max_exposure(self) -> float:
        return max(self.exposures.values())

    @property
    def perplexity_ratio(self) -> float:
        return self.perplexity / self.reference_perplexity

    def exposure_check(self) -> Check:
        over = sum(1 for e in self.exposures.values() if e >= EXPOSURE_THRESHOLD)
        if not over:
            return Check(True)
        return Check(False, f"{over} held-out canaries have an exposure of {EXPOSURE_THRESHOLD:g} bits or more "
                     f"(highest {self.max_exposure:.1f})")  # fmt: skip

    def perplexity_check(self) -> Check:
        if self.perplexity_ratio <= PERPLEXITY_RATIO:
            return Check(True)
        return Check(False, f"perplexity on clean text rose {self.perplexity_ratio - 1:.0%} over the unhardened "
                     f"model (at most {PERPLEXITY_RATIO - 1:.0%})")  # fmt: skip

    def metrics(self) -> dict:
        return {
            "max_exposure_bits": round(self.max_exposure, 2),
            "mean_exposure_bits": round(sum(self.exposures.values()) / len(self.exposures), 2),
            "perplexity": round(self.perplexity, 4),
            "reference_perplexity": round(self.reference_perplexity, 4),
            "train_seconds": round(self.seconds, 1),
            "epsilon": None if self.epsilon is None else round(self.epsilon, 2),
        }


def evaluate_hardening(hardened_docs: object, training: object, canaries: dict[Canary, int],
                       attack: AttackRun) -> Hardening:  # fmt: skip
    """Train on the learner's hardened corpus with the learner's settings; measure both sides."""
    if not isinstance(hardened_docs, list) or not all(isinstance(d, str) for d in hardened_docs):
        raise ValueError("harden_corpus must return a list of strings")
    if sum(map(len, hardened_docs)) < 20_000:
        raise ValueError("harden_corpus kept too little text to train on")
    result = train(hardened_docs, training_config(training))
    exposures = {c.id: measure_exposure(result.model, c).exposure for c in canaries}
    return Hardening(exposures, perplexity(result.model, clean_heldout_text()), attack.perplexity,
                     result.seconds, result.epsilon)  # fmt: skip
