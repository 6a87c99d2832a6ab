"""Integration: the poisoned files really run their payload when loaded unsafely, and the
reference safe_load refuses every unsafe case (visible and held-out) while loading every clean one."""

import pytest
import torch

from doubleedge.defenses.lab06 import safe_load
from doubleedge.grading import lab06
from doubleedge.grading.labs import get_lab
from doubleedge.supplychain import build_cases, load_specs, outcome_of, scan_path

SPECS = load_specs(get_lab("06").heldout_attacks)
POISONED = [s for s in SPECS if s.payload]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return lab06.grading_cases(tmp_path_factory.mktemp("cases"), get_lab("06").heldout_attacks)


@pytest.mark.parametrize("spec", POISONED, ids=lambda s: s.id)
def test_poisoned_files_run_their_payload_when_unpickled_unsafely(spec, tmp_path):
    (case,) = build_cases([spec], tmp_path)
    path = case.path if case.path.is_file() else next(case.path.glob("*.bin"))
    if path.suffix == ".safetensors":  # torch.load reads .safetensors files as safetensors: rename it
        path = path.rename(path.with_suffix(".bin"))
    try:
        torch.load(path, weights_only=False)
    except Exception:  # some payloads break the rest of the load, after running
        pass
    if spec.format == "raw-pickle":
        import pickle

        pickle.loads(path.read_bytes())
    assert case.marker.exists(), "the payload did not run"


def test_reference_safe_load_passes_every_case(cases):
    assert lab06.check_refuses(safe_load, cases)
    assert lab06.check_loads(safe_load, cases)
    assert not any(lab06.marker_state(cases).values())


def test_naive_loader_fails_and_runs_code(tmp_path):
    cases = lab06.grading_cases(tmp_path, get_lab("06").heldout_attacks)

    def naive(path, sha):
        from pathlib import Path

        path = Path(path)
        if path.is_dir():
            path = next(p for p in sorted(path.iterdir()) if p.suffix in (".bin", ".safetensors"))
        return torch.load(path, weights_only=False)

    check = lab06.check_refuses(naive, cases)
    assert not check and "ran the code" in check.reason


def test_scanner_gated_loader_misses_the_blocklist_gaps(tmp_path):
    """Trusting picklescan's 'dangerous' rating lets held-out payloads run: the lesson's point."""
    cases = lab06.grading_cases(tmp_path, get_lab("06").heldout_attacks)

    def gated(path, sha):
        from doubleedge.supplychain import UnsafeModelError, sha256_file

        if sha256_file(path) != sha or scan_path(path).dangerous_files:
            raise UnsafeModelError("refused")
        return torch.load(path, weights_only=False)

    files = [c for c in cases if c.path.is_file()]
    outcomes = {c.id: outcome_of(gated, c.path, c.sha256) for c in files}
    ran = {c.id for c in files if c.marker.exists()}
    assert {"open-zip", "codecs-zip-p5", "zipfile-legacy"} <= ran
    assert not lab06.judge_refusals(files, outcomes, lab06.marker_state(files))
