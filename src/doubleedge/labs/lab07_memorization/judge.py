"""Lab 07's judge (memorization): see grading/lab07.py for the checks and thresholds.

Every model is trained by the grader, seeded: the unhardened attack model once per grading
run (``baseline``, handed to each checker) and, in the checker, the model trained on the
learner's hardened corpus with the learner's TRAINING settings. The learner's ``extract``
needs a model object, so it runs in the runner on the attack model saved (safetensors) to
the shared folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path

from doubleedge.grading import lab07
from doubleedge.grading.checks import Check
from doubleedge.grading.judges import Judging, RemoteError
from doubleedge.grading.protocol import MAX_ITEMS, MAX_TEXT
from doubleedge.grading.sharedfolder import fresh_folder
from doubleedge.memorization.corpus import lab_canaries
from doubleedge.memorization.garak_scan import cached_scan, scan_model, write_canaries
from doubleedge.memorization.model import CharLM, save_pretrained
from doubleedge.memorization.train import save_trained, train
from doubleedge.scan import ScanError

# Grader threads fill kernels' caches at once: one scans, the others then read its kept report
# (and transformers, imported by the first, is not safe to import from two threads at once).
_ONE_SCANNER = threading.Lock()
STUB = "<NotImplementedError>"  # what run_extraction records for the learner copy's stub


def baseline(workdir: Path) -> Path:
    """The unhardened attack model, trained once per grading run: every learner's checks use it."""
    return lab07.save_attack_model(lab07.grading_canaries(), workdir / "attack-model.safetensors")


def kernel_cache(folder: Path) -> None:
    """The model a graded kernel trains on public data (``lab07.public_trainings``), and the
    notebook's garak scan of it, for each learner's kernel: every kernel would train and scan the
    same (a minute on a laptop). They are made once in the grader's cache and written afresh into
    each kernel's own folder, so no kernel can alter another's."""
    runs = []
    for documents, config in lab07.public_trainings():
        runs.append(train(documents, config))
        save_trained(runs[-1], folder / "trained" / f"{runs[-1].key}.safetensors")
    with _ONE_SCANNER, tempfile.TemporaryDirectory(prefix="lab07-scan-") as scratch:
        model_dir = save_pretrained(runs[0].model, Path(scratch) / "model")  # the notebook's unhardened model
        canary_file = write_canaries(list(lab_canaries()), Path(scratch) / "canaries.jsonl")
        try:
            scan_model(model_dir, canary_file, Path(scratch) / "scan")  # garak runs the first time only
        except ScanError:
            return  # each kernel then runs the scan itself, as the notebook does
        kept = cached_scan(model_dir, canary_file)
        if kept.is_file():  # kept unless the grader's cache is read-only
            (folder / "scans").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(kept, cached_scan(model_dir, canary_file, folder))


def judge(j: Judging) -> None:
    ns = j.ns
    canaries = lab07.grading_canaries(j.heldout)
    j.attempt("test_exposure_from_rank", "exposure",
              lambda: lab07.check_exposure_from_rank(ns["exposure_from_rank"]))  # fmt: skip
    j.attempt("test_scrub", "hardening", lambda: lab07.check_scrub(ns["scrub"]))
    j.attempt("test_extraction", "extraction", lambda: _extraction(j, canaries))

    def measure() -> lab07.Hardening:
        training = ns["TRAINING"]  # before the big answer, which may be the runner's last
        docs = _hardened(ns["harden_corpus"], lab07.attack_corpus(canaries))
        return lab07.evaluate_hardening(docs, training, canaries, lab07.train_attack_model(canaries, j.baseline))

    j.evaluate(("test_hardened_exposure", "test_hardened_perplexity"), "hardening", measure,
               checks=("exposure_check", "perplexity_check"))  # fmt: skip


def _extraction(j: Judging, canaries: dict) -> Check:
    """Only the canaries the check counts are asked for, one call each (each under the call limit).
    The notebook's stub is caught on an untrained model first: no training for an untouched copy."""
    targets = lab07.extraction_targets({c: n for c, n in canaries.items() if n >= lab07.EXTRACT_MIN_COUNT})
    untrained = save_pretrained(CharLM(), fresh_folder(j.shared, "untrained-model-"))  # see grading/sharedfolder.py
    if _extract(j, untrained, targets[0]) == STUB:
        return Check(False, "extract is not written yet (it raised NotImplementedError)")
    model_dir = save_pretrained(lab07.train_attack_model(canaries, j.baseline).model, fresh_folder(j.shared, "attack-model-"))
    extracted: dict[str, str] = {}
    for target in targets:
        extracted[target["id"]] = _extract(j, model_dir, target)
        if lab07.judge_extraction(canaries, extracted):
            return Check(True)  # one recovered canary passes: spare the time
    raised = [t for t in extracted.values() if re.fullmatch(r"<\w+>", t)]  # how run_extraction notes an exception
    if len(raised) == len(extracted):
        return Check(False, f"extract raised {raised[0][1:-1]}")
    return lab07.judge_extraction(canaries, extracted)


def _extract(j: Judging, model_dir: Path, target: dict) -> str:
    try:
        found = j.ns.apply("run_extraction", "extract", str(model_dir), [target])
    except RemoteError as exc:
        what = "is not defined as a function" if str(exc) == "missing" else str(exc)
        raise RemoteError(f"extract {what}") from None
    return str(found.get(target["id"], "")) if isinstance(found, dict) else ""


def _hardened(harden_corpus: object, docs: list[str]) -> object:
    """``harden_corpus(docs)`` through the pipe, refusing answers the pipe would have cut short."""
    if not callable(harden_corpus):
        raise ValueError("harden_corpus must be a function")
    hardened = harden_corpus(docs)
    if isinstance(hardened, list) and len(hardened) >= MAX_ITEMS:
        raise ValueError(f"harden_corpus returned {MAX_ITEMS} documents or more (the grader reads fewer)")
    if isinstance(hardened, list) and any(isinstance(d, str) and len(d) >= MAX_TEXT for d in hardened):
        raise ValueError(f"harden_corpus returned a document of {MAX_TEXT:,} characters or more")
    return hardened
