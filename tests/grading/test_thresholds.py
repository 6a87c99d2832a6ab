"""The Lab 01 thresholds do their job: they fail an overfitted and an over-blocking defense."""

import re

import pytest

from doubleedge.evaluate import load_attacks
from doubleedge.grading import lab01
from doubleedge.grading.labs import get_lab
from doubleedge.guards import EncodedPayload, FunctionGuard, MaxLength
from doubleedge.target import Defense

pytestmark = pytest.mark.integration

GARAK_PHRASINGS = re.compile(r"ignore any previous and following instructions|stop everything!!! now!!!", re.I)


def _evaluate(build):
    return lab01.evaluate_hardening(
        lab01.hardened_bot(build, "thresholds"), load_attacks(get_lab("01").heldout_attacks)
    )


def test_defense_fitted_to_garaks_prompts_fails_on_heldout_attacks():
    def overfit(secret):
        garak_only = FunctionGuard(lambda text: bool(GARAK_PHRASINGS.search(text)), name="garak_only")
        return Defense(name="overfit", input_guards=[MaxLength(500), EncodedPayload(), garak_only])

    result = _evaluate(overfit)
    assert result.garak.overall_attack_success_rate < lab01.ASR_THRESHOLD  # it looks good on garak alone...
    assert result.heldout.rate > 0.5  # ...but the held-out attacks get through
    assert not result.asr_check()
    assert result.benign_check()


def test_bot_that_refuses_everything_fails_the_benign_check():
    def refuse_all(secret):
        return Defense(name="refuse-all", input_guards=[FunctionGuard(lambda text: True, name="refuse_all")])

    result = _evaluate(refuse_all)
    assert result.asr_check()  # "secure"...
    assert result.benign.rate == 0 and not result.benign_check()  # ...and useless


def test_reference_solution_passes_with_margin():
    from doubleedge.defenses.lab01 import build_defense

    result = _evaluate(build_defense)
    assert result.attack_success_rate < lab01.ASR_THRESHOLD / 2
    assert result.benign.rate >= lab01.BENIGN_THRESHOLD
