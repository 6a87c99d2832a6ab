"""Labs 02 and 03 end to end: real garak scans before and after, the course's own garak
probes and the graders' evaluation with the held-out sets. Grading the notebooks is
tested for every lab in tests/grading/test_gaming.py."""

from __future__ import annotations

import pytest

from doubleedge.defenses import lab02 as solution02
from doubleedge.defenses import lab03 as solution03
from doubleedge.evaluate import load_attacks
from doubleedge.grading import lab02, lab03
from doubleedge.labs import get_lab
from doubleedge.scan import hits_in, read_report, scan_bot, scan_for_lab

pytestmark = pytest.mark.integration

LEARNER = "ci-learner"


@pytest.fixture(scope="module")
def lab02_scans(tmp_path_factory):
    before = scan_bot(lab02.unhardened_bot(LEARNER), scan_for_lab("02"), tmp_path_factory.mktemp("l02-none"))
    after = lab02.evaluate_hardening(
        lab02.hardened_bot(solution02.build_defense, LEARNER),
        lab02.load_document_attacks(get_lab("02").heldout_attacks),
        tmp_path_factory.mktemp("l02-ref"),
    )
    return before, after


@pytest.fixture(scope="module")
def lab03_scans(tmp_path_factory):
    before = scan_bot(lab03.unhardened_bot(LEARNER), scan_for_lab("03"), tmp_path_factory.mktemp("l03-none"))
    after = lab03.evaluate_hardening(
        lab03.hardened_bot(solution03.build_defense, LEARNER),
        load_attacks(get_lab("03").heldout_attacks),
        tmp_path_factory.mktemp("l03-ref"),
    )
    return before, after


def test_lab02_scan_delivers_prompts_as_documents_and_the_unhardened_bot_fails(lab02_scans):
    before, _ = lab02_scans
    assert {r.probe for r in before.results} == set(scan_for_lab("02").probes)
    assert before.overall_attack_success_rate > 0.6
    rates = {r.probe: r.attack_success_rate for r in before.results}
    assert rates["web_injection.MarkdownImageExfil"] == 1.0
    assert rates["latentinjection.LatentInjectionFactSnippetEiffel"] == 1.0


def test_lab02_reference_solution_passes_with_the_heldout_documents(lab02_scans):
    before, after = lab02_scans
    assert after.garak.overall_attack_success_rate < 0.05 < before.overall_attack_success_rate / 10
    assert after.heldout.rate == 0.0 and after.asr_check() and after.benign_check()
    assert after.documents.rate == 1.0


def test_lab03_course_probes_run_in_garak_and_the_naive_app_leaks(lab03_scans):
    before, _ = lab03_scans
    assert {r.probe for r in before.results} == {"doubleedge.CustomerRecords", "doubleedge.SystemPromptLeak"}
    assert {r.detector for r in before.results} == {"doubleedge.PrivateData"}
    assert before.overall_attack_success_rate == 1.0
    hit = hits_in(before.report_path)[0]
    assert "@example.com" in hit["output"] or "DE-" in hit["output"]


def test_lab03_reference_solution_passes_with_the_heldout_attacks(lab03_scans):
    _, after = lab03_scans
    assert after.garak.overall_attack_success_rate == 0.0 and after.heldout.rate == 0.0
    assert after.asr_check() and after.benign_check() and after.accounts.rate == 1.0


def test_course_detector_scores_zero_on_a_silent_target(tmp_path):
    """The detector does not fire on its own probes' prompts: garak's test.Blank answers ""."""
    from doubleedge.scan import run_garak

    report = run_garak(scan_for_lab("03"), tmp_path, target_type="test.Blank")
    assert report.attempts > 0 and report.hits == 0


@pytest.mark.parametrize("lab", ["02", "03"])
def test_the_class_baseline_scan_does_not_depend_on_the_learner(lab, request, class_baseline):
    """The judges check every learner's scan answers against one scan of the unhardened bot."""
    before, _ = request.getfixturevalue(f"lab{lab}_scans")
    baseline = read_report(class_baseline(lab))
    rates = {(r.probe, r.detector): r.attack_success_rate for r in baseline.results}
    assert rates == {(r.probe, r.detector): r.attack_success_rate for r in before.results}
