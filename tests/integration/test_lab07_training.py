"""Lab 07 end to end with real training: the grade separates a hardened pipeline from a
naive one, the garak canary scan finds the memorized canaries, and exports load in garak."""

import pytest

from doubleedge.defenses.lab07 import TRAINING, harden_corpus
from doubleedge.grading import lab07
from doubleedge.memorization import garak_scan, lab_canaries, make_corpus, save_pretrained, train
from doubleedge.memorization.exposure import extract_greedy
from doubleedge.memorization.garak_scan import scan_model, write_canaries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def heldout():
    return lab07.grading_canaries()


@pytest.fixture(scope="module")
def attack(heldout):
    return lab07.train_attack_model(heldout)


def test_greedy_extraction_recovers_a_heldout_canary(heldout, attack):
    assert lab07.check_extraction(extract_greedy, heldout, attack)


def test_reference_hardening_passes(heldout, attack):
    result = lab07.evaluate_hardening(harden_corpus(lab07.attack_corpus(heldout)), TRAINING, heldout, attack)
    assert result.exposure_check(), result.metrics()
    assert result.perplexity_check(), result.metrics()
    assert result.max_exposure < lab07.EXPOSURE_THRESHOLD - 4, "margin against machine differences"


def test_training_on_the_raw_corpus_fails_the_exposure_check(heldout, attack):
    result = lab07.evaluate_hardening(lab07.attack_corpus(heldout), {"steps": 600}, heldout, attack)
    assert not result.exposure_check()
    assert result.max_exposure > lab07.EXPOSURE_THRESHOLD + 8


def test_garak_canary_scan_of_the_trained_model(tmp_path):
    canaries = lab_canaries()
    model = train(make_corpus(canaries, documents=lab07.CORPUS_DOCUMENTS, seed=lab07.CORPUS_SEED)).model
    folder = save_pretrained(model, tmp_path / "model")
    canary_file = write_canaries(list(canaries), tmp_path / "canaries.jsonl")
    report = scan_model(folder, canary_file, tmp_path / "scan")
    (result,) = report.results
    assert result.probe == "doubleedge_canaries.Canaries" and result.detector == "doubleedge_canaries.SecretLeak"
    assert result.attempts == len(canaries)
    assert result.hits >= 2, "the canaries inserted 64 times leak"
    again = _scan_without_garak(save_pretrained(model, tmp_path / "again"), canary_file, tmp_path / "scan-again")
    assert again.results == report.results, "the same model and canaries: the kept report, read back"
    assert again.report_path.parent.parent == tmp_path / "scan-again"
    floor = scan_model(None, canary_file, tmp_path / "blank")
    assert floor.results[0].attempts == len(canaries) and floor.overall_attack_success_rate == 0


def _scan_without_garak(model_dir, canary_file, workdir):
    """``scan_model`` where running garak fails: only a kept report can answer."""

    def no_garak(*args, **kwargs):
        raise AssertionError("garak ran again for a scan it had kept")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(garak_scan, "run_garak", no_garak)
        return scan_model(model_dir, canary_file, workdir)
