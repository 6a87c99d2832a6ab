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


def test_the_preview_reading_a_rescan_measures_what_a_scan_of_its_own_does():
    """The notebook's preview reads the learner's re-scan (``scanned=after``): same garak figures."""
    from doubleedge.defenses.lab01 import build_defense
    from doubleedge.scan import scan_bot, scan_for_lab

    bot = lab01.hardened_bot(build_defense, "thresholds")
    attacks = load_attacks(get_lab("01").heldout_attacks)
    after = scan_bot(lab01.hardened_bot(build_defense, "thresholds"), scan_for_lab("01"))
    previewed = lab01.evaluate_hardening(bot, attacks, scanned=after)
    scanned_itself = lab01.evaluate_hardening(bot, attacks)
    assert previewed.garak.results == scanned_itself.garak.results and previewed.garak is after
    assert previewed.attack_success_rate == scanned_itself.attack_success_rate
    assert previewed.benign == scanned_itself.benign
