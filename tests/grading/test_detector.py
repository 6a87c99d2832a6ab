"""Lab 01's detector exercise: the held-out labelled messages separate a detector the learner
wrote from the course's guards with their defaults, from lists of the published messages and
from detectors that flag everything or nothing. Each reason gives counts, never a message."""

from __future__ import annotations

import pytest

from doubleedge.defenses import lab01 as solution
from doubleedge.evaluate import load_attacks, published_labelled, score_detector
from doubleedge.grading import lab01
from doubleedge.grading.labs import get_lab
from doubleedge.guards import EncodedPayload, FunctionGuard, InjectionClassifier, InjectionHeuristics, MaxLength
from doubleedge.target import Defense

HELDOUT = lab01.heldout_detection_cases()
PUBLISHED_ATTACKS = {e.text for e in published_labelled() if e.attack}
PUBLISHED_ORDINARY = {e.text for e in published_labelled() if not e.attack}


def flags(guard):
    return lambda text: not guard.scan(text).allowed


def assert_quotes_nothing_held_out(reason: str) -> None:
    assert not [case.text for case in HELDOUT if case.text in reason]


def test_the_heldout_set_is_other_wording_with_both_labels():
    assert sum(c.attack for c in HELDOUT) == 33 and sum(not c.attack for c in HELDOUT) == 30
    assert not {c.text for c in HELDOUT} & {e.text for e in published_labelled()}
    # the detection records sit beside the attacks, which keep their own reader
    assert len(load_attacks(get_lab("01").heldout_attacks)) == 25


def test_the_reference_detector_catches_every_heldout_attack_and_flags_no_ordinary_message():
    scores = score_detector(solution.looks_like_injection, HELDOUT)
    assert (scores.recall, scores.false_positive_rate) == (1.0, 0.0), (scores.missed, scores.false_alarms)
    assert lab01.check_detector(solution.looks_like_injection)


def test_the_course_heuristics_with_their_defaults_fail_both_limits():
    scores = score_detector(flags(InjectionHeuristics()), HELDOUT)
    assert (scores.true_positives, scores.false_positives) == (3, 15)  # the figures the lesson quotes
    assert scores.recall < lab01.DETECTION_RECALL and scores.false_positive_rate > lab01.DETECTION_FPR
    check = lab01.check_detector(flags(InjectionHeuristics()))
    assert not check and "3 of 33 held-out attacks" in check.reason and "15 of 30" in check.reason
    assert_quotes_nothing_held_out(check.reason)


def test_the_course_classifier_with_its_defaults_misses_too_many_attacks():
    scores = score_detector(flags(InjectionClassifier()), HELDOUT)
    assert (scores.true_positives, scores.false_positives) == (22, 2)  # the figures the lesson quotes
    check = lab01.check_detector(flags(InjectionClassifier()))
    assert not check and "22 of 33 held-out attacks" in check.reason


@pytest.mark.parametrize(
    "detect, says",
    [
        (lambda text: text in PUBLISHED_ATTACKS, "held-out attacks"),
        (lambda text: text not in PUBLISHED_ORDINARY, "held-out ordinary messages"),
        (lambda text: True, "held-out ordinary messages"),
        (lambda text: False, "held-out attacks"),
        ("not a function", "must be a function"),
        (lambda text: 1 / 0, "raised ZeroDivisionError"),
    ],
    ids=["deny-published-attacks", "allow-published-ordinary", "flag-everything", "flag-nothing", "not-callable",
         "raises"],
)  # fmt: skip
def test_detectors_without_the_skill_fail_with_a_clear_reason(detect, says):
    check = lab01.check_detector(detect)
    assert not check and says in check.reason and check.reason.startswith("looks_like_injection")
    assert_quotes_nothing_held_out(check.reason)


def test_the_published_lists_score_perfectly_on_the_published_set_only():
    """What makes a held-out set necessary: the list is perfect on what it memorized."""
    memorized = score_detector(lambda text: text in PUBLISHED_ATTACKS, published_labelled())
    assert (memorized.recall, memorized.false_positive_rate) == (1.0, 0.0)
    assert score_detector(lambda text: text in PUBLISHED_ATTACKS, HELDOUT).recall == 0.0


def test_the_reference_defense_uses_the_detector():
    bot = lab01.hardened_bot(solution.build_defense, "detector")
    assert lab01.check_defense_uses_detector(solution.looks_like_injection, bot)


def test_a_defense_of_course_guards_beside_a_good_detector_fails_the_use_check():
    def menu(secret: str) -> Defense:
        return Defense(name="menu", system_prompt=solution.HARDENED_SYSTEM_PROMPT,
                       input_guards=[MaxLength(500), InjectionHeuristics(), EncodedPayload()])  # fmt: skip

    check = lab01.check_defense_uses_detector(solution.looks_like_injection, lab01.hardened_bot(menu, "detector"))
    assert not check and "FunctionGuard(looks_like_injection)" in check.reason
    assert_quotes_nothing_held_out(check.reason)


def test_a_detector_that_flags_nothing_has_nothing_to_use():
    bot = lab01.hardened_bot(solution.build_defense, "detector")
    check = lab01.check_defense_uses_detector(lambda text: False, bot)
    assert not check and "flags none of the held-out attacks" in check.reason


def test_a_defense_that_wraps_the_detector_passes_the_use_check_with_any_other_guards():
    def wrapped(secret: str) -> Defense:
        mine = FunctionGuard(solution.looks_like_injection)
        return Defense(name="mine", system_prompt=solution.HARDENED_SYSTEM_PROMPT,
                       input_guards=[InjectionHeuristics(), mine])  # fmt: skip

    assert lab01.check_defense_uses_detector(solution.looks_like_injection, lab01.hardened_bot(wrapped, "detector"))


def test_the_heldout_order_hides_the_labels():
    """A detector that flags its first 33 calls (the file lists the 33 attacks first) fails."""
    calls = []

    def counting(text: str) -> bool:
        calls.append(text)
        return len(calls) <= 33

    assert [c.attack for c in HELDOUT][:33] != [True] * 33
    assert not lab01.check_detector(counting)
