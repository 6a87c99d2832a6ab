"""The Lab 06 and Lab 07 judges fail the right tests for realistic wrong solutions.

Each case is one authoritative run (runner and checker in the sandbox) on the source
notebook's solution cells with some of them swapped for wrong ones. Reasons reach the
learner, so none may quote the held-out set. Only one run trains models (Lab 07's).
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest

from doubleedge.grading import authoritative, sandbox
from doubleedge.grading.judges import judge_for
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import reference_cells
from doubleedge.memorization import load_canaries

pytestmark = pytest.mark.integration

LEARNER = "judge-test"

# Lab 06: the loader every tutorial shows, which runs whatever the pickle says.
TORCH_LOAD = """
def safe_load(path, expected_sha256):
    path = Path(path)
    if path.is_dir():
        path = next(p for p in sorted(path.iterdir()) if p.suffix in (".bin", ".safetensors"))
    return torch.load(path, map_location="cpu", weights_only=False)
"""
# A loader that refuses everything is safe, and useless.
REFUSE_ALL = """
def safe_load(path, expected_sha256):
    raise UnsafeModelError("nothing is safe")
"""
HANG = """
def safe_load(path, expected_sha256):
    while True:
        pass
"""
# Hostile values: a huge string, and an answer that is not data (a generator).
HUGE_MARKER = 'def read_marker(model_file, marker_file):\n    return "Double Edge " * 10**6\n'
GENERATOR_ANSWERS = """
FLAGGED_FILES = (f for f in ["pickle/pytorch_model.bin"])
PAYLOAD_GLOBAL = "builtins.exec"
MISSED_VARIANTS = {"remote-code", "tampered"}  # a set is a fine answer
"""

# The answer every learner had before Exercise 1's text carried a proof, returned for any file.
COPIED_MARKER = """
def read_marker(model_file, marker_file):
    return "Double Edge lab 06: this file ran code when it was loaded."
"""
# A template check written against the one tampered copy the lab shows.
VISIBLE_TRIGGER = """
def template_is_trusted(path):
    return "refund" not in chat_template(path)
"""

# Lab 06, hostile: appended to the scan_answers cell (whose answers it keeps). It finds the shared
# folder among its mounts, links the names where the checker used to build its files to the
# checker's own folder, and keeps planting such a link in every folder that appears there.
PLANT_LINKS = """
import os, threading, time

SHARED = next(Path(line.split()[4]) for line in open("/proc/self/mountinfo")
              if Path(line.split()[4]).name.startswith("shared-"))
ELSEWHERE = SHARED.parent / SHARED.name.replace("shared-", "checker-")  # the checker's own folder
for _name in ("marker", "cases", "templates"):
    os.symlink(ELSEWHERE, SHARED / _name)


def _plant_forever():
    while True:
        for root, folders, _ in os.walk(SHARED):
            for folder in folders:
                try:
                    os.symlink(ELSEWHERE, Path(root) / folder / "planted")
                except OSError:
                    pass
        time.sleep(0.005)


threading.Thread(target=_plant_forever, daemon=True).start()
"""

# Lab 07: an attack that recovers nothing; a "hardening" that changes nothing.
EMPTY_EXTRACT = """
def extract(model, prefix, length):
    return ""
"""
NATURAL_LOG = """
def exposure_from_rank(rank, space_size):
    return math.log(space_size / rank)
"""
# The learner copy's stub: caught without training a model.
STUB_EXTRACT = """
def extract(model, prefix, length):
    raise NotImplementedError()
"""
# harden_corpus returning the documents unchanged, or too many for the pipe (it reads fewer than 2000).
REFERENCE_HARDENING = "return deduplicate([scrub(doc) for doc in documents])"
BROKEN_CELL = "raise RuntimeError('not yet')"


@pytest.fixture(scope="module")
def baselines(class_baseline):
    """``baselines(lab)``: the lab's baseline, built once per test run as grading builds it once
    per class (Lab 06: its graded model files; Lab 07: the attack model)."""
    return class_baseline


def grade(lab: str, tmp_path, baselines, limits: sandbox.Limits | None = None, **swapped: str) -> dict:
    setup, cells = reference_cells(get_lab(lab))
    cells.update(swapped)
    box = sandbox.make_sandbox("auto", limits)
    return authoritative.run(lab, LEARNER, setup, cells, baselines(lab), get_lab(lab).heldout_attacks, tmp_path, box)


def hardening(returns: str) -> str:
    """The source's hardening cell (scrub and TRAINING as they are), with harden_corpus returning ``returns``."""
    source = reference_cells(get_lab("07"))[1]["hardening"]
    assert REFERENCE_HARDENING in source
    return source.replace(REFERENCE_HARDENING, f"return {returns}")


def failed(result: dict) -> dict[str, str]:
    return {k: v["reason"] for k, v in result["tests"].items() if not v["passed"]}


def test_lab06_torch_load_runs_the_payloads(tmp_path, baselines):
    result = grade("06", tmp_path, baselines, safe_load=TORCH_LOAD, marker=HUGE_MARKER, scan_answers=GENERATOR_ANSWERS)
    reasons = failed(result)
    assert set(reasons) == {"test_marker", "test_scan_findings", "test_safe_load_refuses"}, reasons
    assert "ran the code in pickle" in reasons["test_safe_load_refuses"]  # the kind of case, and the marker
    assert "list of file paths" in reasons["test_scan_findings"]


def test_lab06_refusing_everything_loads_nothing(tmp_path, baselines):
    result = grade("06", tmp_path, baselines, safe_load=REFUSE_ALL, scan_answers=BROKEN_CELL)
    reasons = failed(result)
    assert set(reasons) == {"test_safe_load_loads", "test_scan_findings", "test_scan_blind_spots"}, reasons
    assert reasons["test_safe_load_loads"].startswith("safe_load refused safetensors, which must load")
    assert "RuntimeError" in reasons["test_scan_findings"]


def test_lab06_a_copied_marker_and_a_trigger_allowlist_fail(tmp_path, baselines):
    """The package's old constant is not the text of the grader's file; the held-out tampered copies
    use other triggers than the lab's copy."""
    reasons = failed(grade("06", tmp_path, baselines, marker=COPIED_MARKER, template_check=VISIBLE_TRIGGER))
    assert set(reasons) == {"test_marker", "test_template_is_trusted"}, reasons
    assert "whose chat template was changed" in reasons["test_template_is_trusted"]
    assert "refund" not in reasons["test_template_is_trusted"]


def test_lab06_a_hanging_loader_costs_one_call(tmp_path, baselines):
    start = time.monotonic()
    result = grade("06", tmp_path, baselines, sandbox.Limits(call_seconds=2), safe_load=HANG)
    assert time.monotonic() - start < 45, "every case was tried (30 of them, 2 s each)"
    reasons = failed(result)
    assert set(reasons) == {"test_safe_load_refuses", "test_safe_load_loads"}, reasons
    assert all("did not answer within 2 s (on safetensors)" in r for r in reasons.values()), reasons


def test_lab06_links_planted_in_the_shared_folder_send_the_checker_nowhere(tmp_path, baselines):
    """Learner code that plants links in the shared folder, at the paths the checker used to write and
    in every folder the checker makes, changes only its own file tests (each passes, or fails with the
    link note), and the checker writes nothing outside the shared folder."""
    from doubleedge.grading.sharedfolder import LINK_NOTE

    _, cells = reference_cells(get_lab("06"))
    result = grade("06", tmp_path, baselines, scan_answers=cells["scan_answers"] + "\n" + PLANT_LINKS)
    tests = result["tests"]
    assert tests["test_scan_findings"]["passed"] and tests["test_scan_blind_spots"]["passed"], tests
    for test_id in ("test_marker", "test_safe_load_refuses", "test_safe_load_loads", "test_template_is_trusted"):
        assert tests[test_id]["passed"] or tests[test_id]["reason"] == LINK_NOTE, (test_id, tests[test_id])
    checker = tmp_path / "checker-0"  # the grader's inputs, and the result: nothing the checker built
    assert {p.name for p in checker.iterdir()} <= {"heldout.jsonl", "skipped.json", "sources.json", "out", "result.json"}
    assert sorted(p.name for p in checker.rglob("*") if p.parent.name == "out") in ([], ["result.json"])
    assert all((tmp_path / "shared-0" / name).is_symlink() for name in ("marker", "cases", "templates"))


def assert_no_canary(result: dict) -> None:
    for canary in load_canaries(get_lab("07").heldout_attacks):
        for reason in failed(result).values():
            assert canary.secret not in reason and canary.prefix[-20:] not in reason, reason


def test_lab07_empty_extraction_and_unchanged_corpus_fail(tmp_path, baselines):
    result = grade("07", tmp_path, baselines, extraction=EMPTY_EXTRACT, exposure=NATURAL_LOG,
                   hardening=hardening("list(documents)"))  # fmt: skip
    reasons = failed(result)
    assert set(reasons) == {"test_extraction", "test_exposure_from_rank", "test_hardened_exposure"}, reasons
    assert "recovered no canary" in reasons["test_extraction"]
    assert "should be 10, not 6.931" in reasons["test_exposure_from_rank"]
    assert "bits or more" in reasons["test_hardened_exposure"]
    assert result["metrics"]["max_exposure_bits"] > 20, result["metrics"]  # far over the 12-bit line
    assert_no_canary(result)
    # The unchanged corpus with the reference's TRAINING is the class's attack model, which the
    # grader trained for the baseline: the checker looked for it in its own cache, read the
    # grader's copy and trained nothing (a model it trains is left there for the grader to adopt).
    from doubleedge.grading import lab07
    from doubleedge.memorization.train import training_key

    key = training_key(lab07.attack_corpus(lab07.grading_canaries()), lab07.training_config({"steps": 600}))
    own = tmp_path / "checker-0" / "out" / "cache" / "trained"
    assert (own / f"{key}.lock").is_file() and not list(own.glob("*.safetensors"))


def test_lab07_stub_and_answers_the_pipe_would_cut_fail_without_training(tmp_path, baselines):
    result = grade("07", tmp_path, baselines, extraction=STUB_EXTRACT, hardening=hardening("documents * 3"))
    assert not (tmp_path / "shared-0" / "attack-model").exists(), "no model should have been trained"
    reasons = failed(result)
    assert set(reasons) == {"test_extraction", "test_hardened_exposure", "test_hardened_perplexity"}, reasons
    assert reasons["test_extraction"] == "extract is not written yet (it raised NotImplementedError)"
    assert "2000 documents or more" in reasons["test_hardened_exposure"]
    assert reasons["test_hardened_perplexity"] == reasons["test_hardened_exposure"]
    assert result["metrics"] == {}


def test_lab07_kernels_get_the_notebooks_public_models_as_their_own_copies(tmp_path):
    """Every model a graded kernel trains on the notebook's public corpus is in the kernel's cache,
    so no learner's autograde trains it again; each kernel gets files of its own, not the grader's.
    The cell that also trains DP-SGD there is one that a graded kernel skips (selfcheck.graded_kernel)."""
    from doubleedge.memorization import TrainConfig, lab_canaries, make_corpus, save_pretrained
    from doubleedge.memorization.garak_scan import cached_scan, write_canaries
    from doubleedge.memorization.train import load_trained, training_key
    from doubleedge.paths import cache_dir
    from doubleedge.scan import read_report

    cells = [c.source for c in nbformat.read(get_lab("07").source_notebook, 4).cells if c.cell_type == "code"]
    graded = "\n".join(c for c in cells if "if graded_kernel():" not in c)  # what a graded kernel runs
    corpus = eval(re.search(r"corpus = (make_corpus\(.*\))", graded).group(1),  # the course's notebook
                  {"make_corpus": make_corpus, "CANARIES": lab_canaries()})  # fmt: skip
    public = r"train\(corpus, (TrainConfig\(.*?\))\)"
    configs = [eval(c, {"TrainConfig": TrainConfig}) for c in re.findall(public, graded)]
    assert len(configs) == 1 and len(re.findall(public, "\n".join(cells))) == 2  # the run; DP-SGD is skipped
    judge_for("07").kernel_cache(tmp_path)
    for config in configs:
        key = training_key(corpus, config)
        copy = tmp_path / "trained" / f"{key}.safetensors"
        assert load_trained(copy, key).key == key
        original = cache_dir() / "trained" / copy.name
        assert copy.stat().st_nlink == 1 and not copy.samefile(original)
    assert len(list((tmp_path / "trained").glob("*.safetensors"))) == len(configs)  # nothing a kernel never reads
    # and the report of the notebook's garak scan of its unhardened model, kept under that model's key
    model_dir = save_pretrained(load_trained(tmp_path / "trained" / f"{training_key(corpus, configs[0])}.safetensors").model,
                                tmp_path / "notebook-model")  # fmt: skip
    kept = cached_scan(model_dir, write_canaries(list(lab_canaries()), tmp_path / "canaries.jsonl"), tmp_path)
    assert read_report(kept).results[0].attempts == len(lab_canaries())
    assert kept.stat().st_nlink == 1 and not kept.samefile(cache_dir() / "scans" / kept.name)
