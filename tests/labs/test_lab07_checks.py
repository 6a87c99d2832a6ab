"""Lab 07's pure checks, on tables of learner answers (training-free)."""

import math
import re

import pytest

from doubleedge.defenses import lab07 as solution
from doubleedge.grading import lab07
from doubleedge.memorization import lab_canaries


def test_check_exposure_from_rank():
    assert lab07.check_exposure_from_rank(lambda r, n: math.log2(n) - math.log2(r))
    assert not lab07.check_exposure_from_rank(lambda r, n: math.log2(n / r) + 1)
    assert not lab07.check_exposure_from_rank(lambda r, n: math.log(n) - math.log(r))  # natural log
    assert "raised" in lab07.check_exposure_from_rank(lambda r, n: 1 / 0).reason


def test_check_scrub():
    assert lab07.check_scrub(solution.scrub)
    assert "left" in lab07.check_scrub(lambda t: t).reason
    assert "removed" in lab07.check_scrub(lambda t: re.sub(r"\d", "#", t)).reason
    assert not lab07.check_scrub(lambda t: None)


def test_judge_extraction():
    canaries = {c: n for c, n in lab_canaries().items()}
    top = next(c for c, n in canaries.items() if n >= lab07.EXTRACT_MIN_COUNT)
    low = next(c for c, n in canaries.items() if n < lab07.EXTRACT_MIN_COUNT)
    assert lab07.judge_extraction(canaries, {top.id: top.secret})
    assert lab07.judge_extraction(canaries, {top.id: f" {top.secret}. Can"})
    assert not lab07.judge_extraction(canaries, {low.id: low.secret}), "only canaries inserted 64 times count"
    assert not lab07.judge_extraction(canaries, {})


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"steps": 600}, True),
        ({"steps": 600, "noise_multiplier": 1.0, "max_grad_norm": 1.0}, True),
        ({"steps": 5000}, False),
        ({"steps": 800, "noise_multiplier": 1.0}, False),
        ({"steps": 600, "seed": 3}, False),
        ({"steps": 600, "lr": 1.0}, False),
        ("fast", False),
    ],
)
def test_training_config_bounds(value, ok):
    if ok:
        lab07.training_config(value)
    else:
        with pytest.raises(ValueError):
            lab07.training_config(value)


def test_hardening_checks_are_thresholds():
    h = lab07.Hardening({"a": 3.0, "b": 11.9}, perplexity=1.30, reference_perplexity=1.25, seconds=1, epsilon=None)
    assert h.exposure_check() and h.perplexity_check()
    assert not lab07.Hardening({"a": 12.0}, 1.0, 1.0, 1, None).exposure_check()
    assert not lab07.Hardening({"a": 1.0}, 1.6, 1.25, 1, None).perplexity_check()
    assert set(h.metrics()) >= {"max_exposure_bits", "perplexity", "reference_perplexity"}


def test_evaluate_hardening_rejects_bad_corpora():
    attack = lab07.AttackRun(model=None, perplexity=1.0, seconds=0)
    with pytest.raises(ValueError):
        lab07.evaluate_hardening("text", {"steps": 600}, {}, attack)
    with pytest.raises(ValueError):
        lab07.evaluate_hardening(["tiny"], {"steps": 600}, {}, attack)
