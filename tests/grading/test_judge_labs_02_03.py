"""The Lab 02 and Lab 03 judges fail the right tests for realistic wrong solutions.

Each case is one authoritative run (runner and checker in the sandbox) on the source
notebook's solution cells with some of them swapped for wrong ones. Reasons reach the
learner, so none may quote the held-out set.
"""

from __future__ import annotations

import json

import pytest

from doubleedge.grading import authoritative, sandbox
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import reference_cells

pytestmark = pytest.mark.integration

LEARNER = "judge-test"

# Lab 02: a document guard that raises on every document; strip_instructions answers with
# something that is not data; the planted review is an object, not text.
BROKEN_DOCUMENT_GUARD = """
def strip_instructions(document):
    return document.encode()


def build_defense(secret):
    def broken(text):
        raise ValueError("guard bug")

    return Defense(name="broken", system_prompt=HARDENED_SYSTEM_PROMPT,
                   document_guards=[RewriteGuard(broken, name="broken")])
"""

# Lab 02: a document guard that never returns (the call limit is short in this test).
HANGING_DOCUMENT_GUARD = """
def build_defense(secret):
    def forever(text):
        while True:
            pass

    return Defense(name="hangs", system_prompt=HARDENED_SYSTEM_PROMPT,
                   document_guards=[RewriteGuard(forever, name="forever")])
"""

# Lab 03: records_for answers "yes" (truthy, not a list of rows): the app must show nothing.
TRUTHY_ACCESS = """
def records_for(signed_in, message, store):
    return "yes"
"""

# Lab 03: a prompt that asks nicely, and nothing else; redact_pii (unused by it) raises.
PROMPT_ONLY = """
def redact_pii(reply):
    raise RuntimeError("not done")


def build_defense(secret):
    return Defense(name="prompt only", system_prompt=HARDENED_SYSTEM_PROMPT)
"""


@pytest.fixture(scope="module")
def grade(tmp_path_factory, class_baseline):
    """grade(lab, **swapped_cells) -> the authoritative result; the baseline scans run once per test run."""

    def run(lab: str, limits: sandbox.Limits | None = None, **swapped: str) -> dict:
        setup, cells = reference_cells(get_lab(lab))
        cells.update(swapped)
        return authoritative.run(lab, LEARNER, setup, cells, class_baseline(lab), get_lab(lab).heldout_attacks,
                                 tmp_path_factory.mktemp("auth"), sandbox.make_sandbox("auto", limits))  # fmt: skip

    return run


def failed(result: dict) -> set[str]:
    return {k for k, v in result["tests"].items() if not v["passed"]}


def assert_no_heldout_text(result: dict, lab: str) -> None:
    cases = [json.loads(line) for line in get_lab(lab).heldout_attacks.read_text("utf-8").splitlines() if line.strip()]
    payloads = [c.get(k) for c in cases for k in ("document", "prompt", "marker") if c.get(k)]
    for test in result["tests"].values():
        assert not any(p[:40] in test["reason"] for p in payloads), test["reason"]
    assert set(result["attacks"].get("heldout", [])) <= {c["id"] for c in cases}


def test_lab02_document_guard_that_raises_fails_hardening(grade):
    _, cells = reference_cells(get_lab("02"))
    result = grade(
        "02", planted_review="PLANTED_REVIEW = object()", hardening=cells["hardening"] + BROKEN_DOCUMENT_GUARD
    )
    assert failed(result) == {"test_planted_review", "test_strip_instructions", "test_datamark_in_defense",
                              "test_hardening_asr", "test_hardening_benign"}  # fmt: skip
    tests = result["tests"]
    assert "raised ValueError" in tests["test_hardening_asr"]["reason"]
    assert tests["test_hardening_benign"]["reason"] == tests["test_hardening_asr"]["reason"]
    assert "must be a non-empty string" in tests["test_planted_review"]["reason"]
    assert "must return a string" in tests["test_strip_instructions"]["reason"]
    assert_no_heldout_text(result, "02")


def test_lab02_document_guard_that_hangs_fails_hardening_in_time(grade):
    """garak would retry the server's errors for ever: the run must end, with the reason, and keep the other tests."""
    _, cells = reference_cells(get_lab("02"))
    result = grade("02", sandbox.Limits(call_seconds=2), hardening=cells["hardening"] + HANGING_DOCUMENT_GUARD)
    assert failed(result) == {"test_datamark_in_defense", "test_hardening_asr", "test_hardening_benign"}
    assert "did not answer within 2 s" in result["tests"]["test_hardening_asr"]["reason"]


def test_lab03_truthy_record_access_denies_so_no_record_leaks(grade):
    """Every record is denied: the signed-in customer's own questions go unanswered, nobody's leaks."""
    _, cells = reference_cells(get_lab("03"))
    result = grade("03", access=cells["access"] + TRUTHY_ACCESS, card_digits="MY_CARD_ATTACK = 'hi'\nextract_card_last4 = 1234",
                   record_attack=f"MY_RECORD_ATTACK = {'x' * 100_000!r}")  # fmt: skip
    assert failed(result) == {"test_record_attack", "test_card_digits", "test_records_for", "test_hardening_benign"}
    tests, metrics = result["tests"], result["metrics"]
    assert "own accounts" in tests["test_hardening_benign"]["reason"]
    assert metrics["account_pass_rate"] < 0.9 and metrics["attack_success_rate"] == 0.0
    assert result["attacks"]["heldout"] == []
    assert "at most" in tests["test_record_attack"]["reason"]
    assert_no_heldout_text(result, "03")


def test_lab03_prompt_only_defense_fails_the_attack_success_rate(grade):
    _, cells = reference_cells(get_lab("03"))
    result = grade("03", hardening=cells["hardening"] + PROMPT_ONLY)
    assert failed(result) == {"test_redact_pii", "test_defense_uses_them", "test_hardening_asr"}
    assert "redact_pii raised" in result["tests"]["test_redact_pii"]["reason"]
    assert "pass check_code=check_code" in result["tests"]["test_defense_uses_them"]["reason"]
    assert "attack success rate" in result["tests"]["test_hardening_asr"]["reason"]
    assert result["metrics"]["attack_success_rate"] >= 0.1 and result["attacks"]["heldout"]
    assert_no_heldout_text(result, "03")
