"""Benchmarks of the labs on the model itself (Lab 07), as ratios against same-run baselines.

Run from the repository root: ``.venv/bin/python bench/labs_model.py [--repeat N] [--skip-dp]``.

* **lab07 training vs forward only**: ``train`` as the lab and the grader run it (600 steps,
  batch 32 x 64 characters, one thread, deterministic) against the same number of forward
  passes on the same batches without backward pass or optimizer step.
* **lab07 checker's attack model: the class's vs its own**: what each submission's checker
  pays for the unhardened model when the grader trained it once for the class (loading
  the baseline file) against training it itself (as it did before).
* **lab07 garak scan vs garak floor**: the canary scan of the trained model folder
  (garak's stock ``huggingface`` generator and the course's canary probe) against the same
  spec on garak's ``test.Blank`` generator.

Also reports, once (training is deterministic), what the lesson quotes: exposure of the
lab's canaries by insertion count, the held-out canaries before and after the reference
hardening, perplexity on clean text, and the DP-SGD trade-off. Writes
bench/results/labs_model.json. Exits 0: this is a report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import torch

from doubleedge.defenses.lab07 import TRAINING, harden_corpus
from doubleedge.grading import lab07
from doubleedge.memorization import (
    TrainConfig,
    clean_heldout_text,
    lab_canaries,
    make_corpus,
    measure_exposure,
    perplexity,
    save_pretrained,
    train,
)
from doubleedge.memorization.exposure import extract_greedy
from doubleedge.memorization.garak_scan import scan_model, write_canaries
from doubleedge.memorization.train import _loss, deterministic, windows

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "labs_model.json"


def _timed(call: Callable[[], object]) -> float:
    """Seconds for ``call`` in a fresh checker: nothing kept in memory or on disk from before."""
    lab07._attack_model.cache_clear()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache, mock.patch.dict(os.environ, DOUBLEEDGE_CACHE=cache):
        start = time.perf_counter()
        call()
        return time.perf_counter() - start


def _alternate(subject: Callable[[], float], baseline: Callable[[], float], repeat: int) -> dict:
    subjects, baselines = [], []
    for _ in range(repeat):
        subjects.append(subject())
        baselines.append(baseline())
    s, b = statistics.median(subjects), statistics.median(baselines)
    return {"subject_s": subjects, "baseline_s": baselines, "subject_median_s": round(s, 2),
            "baseline_median_s": round(b, 2), "ratio": round(s / b, 2)}  # fmt: skip


def _forward_only(corpus: list[str], config: TrainConfig) -> float:
    """The same batches through a fresh model, forward only: the floor under training."""
    from doubleedge.memorization.model import CharLM

    with deterministic():
        torch.manual_seed(config.seed)
        model = CharLM(config.model)
        examples = windows(corpus, config.seq_len)
        generator = torch.Generator().manual_seed(config.seed + 1)
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(config.steps):
                batch = examples[torch.randint(len(examples), (config.batch_size,), generator=generator)]
                _loss(model, batch)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-dp", action="store_true", help="skip the DP-SGD run (the slowest part)")
    args = parser.parse_args(argv)
    canaries = lab_canaries()
    corpus = make_corpus(canaries, documents=lab07.CORPUS_DOCUMENTS, seed=lab07.CORPUS_SEED)
    config = TrainConfig()
    clean = clean_heldout_text()
    results: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
                     "torch": torch.__version__, "cpus": torch.get_num_threads(), "repeat": args.repeat}  # fmt: skip

    runs = []

    def subject() -> float:
        runs.append(train(corpus, config, cache=False))
        return runs[-1].seconds

    results["lab07 training vs forward only"] = _alternate(subject, lambda: _forward_only(corpus, config), args.repeat)
    same = all(r.losses == runs[0].losses for r in runs)
    results["training is deterministic across runs"] = same
    model = runs[0].model
    results["lab canaries"] = {
        c.id: {"insertions": n, "exposure_bits": round(measure_exposure(model, c).exposure, 1),
               "greedy_extracts": extract_greedy(model, c.prefix, len(c.secret)) == c.secret}
        for c, n in canaries.items()
    }  # fmt: skip
    results["unhardened perplexity"] = round(perplexity(model, clean), 4)

    with tempfile.TemporaryDirectory(prefix="bench-lab07-") as tmp:
        folder = save_pretrained(model, Path(tmp) / "model")
        canary_file = write_canaries(list(canaries), Path(tmp) / "canaries.jsonl")
        reports = {}
        counter = iter(range(1000))

        def scan() -> float:
            start = time.perf_counter()
            reports["model"] = scan_model(folder, canary_file, Path(tmp) / f"scan-{next(counter)}")
            return time.perf_counter() - start

        def floor() -> float:
            start = time.perf_counter()
            reports["blank"] = scan_model(None, canary_file, Path(tmp) / f"blank-{next(counter)}")
            return time.perf_counter() - start

        results["lab07 garak scan vs garak floor"] = _alternate(scan, floor, args.repeat)
        results["garak canary ASR, trained model"] = round(reports["model"].overall_attack_success_rate, 4)
        results["garak canary ASR, test.Blank"] = round(reports["blank"].overall_attack_success_rate, 4)

    heldout = lab07.grading_canaries()
    with tempfile.TemporaryDirectory(prefix="bench-lab07-") as tmp:
        saved = lab07.save_attack_model(heldout, Path(tmp) / "attack-model.safetensors")
        results["lab07 checker's attack model: the class's vs its own"] = _alternate(
            lambda: _timed(lambda: lab07.train_attack_model(heldout, saved)),
            lambda: _timed(lambda: lab07.train_attack_model(heldout)),
            args.repeat,
        )
    attack = lab07.train_attack_model(heldout)
    results["held-out canaries, unhardened"] = {c.id: round(measure_exposure(attack.model, c).exposure, 1)
                                                for c in heldout}  # fmt: skip
    extracted = lab07.run_extraction(extract_greedy, attack.model, lab07.extraction_targets(heldout))
    results["held-out canaries recovered by greedy decoding"] = sorted(
        c.id for c in heldout if extracted[c.id] == c.secret
    )
    hardened = lab07.evaluate_hardening(harden_corpus(lab07.attack_corpus(heldout)), TRAINING, heldout, attack)
    results["held-out canaries, reference hardening"] = hardened.metrics()
    if not args.skip_dp:
        dp = train(corpus, TrainConfig(noise_multiplier=1.0, max_grad_norm=1.0), cache=False)
        results["DP-SGD noise 1.0, lab corpus"] = {
            "seconds": round(dp.seconds, 1), "epsilon": round(dp.epsilon, 2),
            "perplexity": round(perplexity(dp.model, clean), 3),
            "max_exposure_bits": round(max(measure_exposure(dp.model, c).exposure for c in canaries), 1),
        }  # fmt: skip

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    ratios = ("lab07 training vs forward only", "lab07 garak scan vs garak floor",
              "lab07 checker's attack model: the class's vs its own")  # fmt: skip
    for name in ratios:
        r = results[name]
        print(f"{name:52} {r['subject_median_s']:7.2f} s vs {r['baseline_median_s']:6.2f} s   ratio {r['ratio']:.2f}")
    for key, value in results.items():
        if key not in ratios:
            print(f"{key}: {value}")
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
