"""Regrading Lab 07: the authoritative run of one submission when the grader already keeps the
model its checker trains, against the same run when it does not.

Run from the repository root: ``.venv/bin/python bench/lab07_regrade.py [--repeat 3]``.
The submission is the source notebook's solution cells (the reference hardening). The class's
attack model (the baseline) is trained once, outside the timings. Each run grades in a fresh
scratch folder with a kit cache of its own:

* baseline, first grade: an empty cache, so the checker trains the hardened model (then the
  grader adopts it);
* subject, regrade: a cache that holds the model adopted by a first grade, so the checker reads it.

Both runs must give the same result (else the script stops), and the first must leave the model
in its cache. Prints the medians and their ratio, writes bench/results/lab07_regrade.json, and
exits 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_comparison

from doubleedge.grading import authoritative
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import baseline_report, reference_cells
from doubleedge.grading.sandbox import make_sandbox
from doubleedge.paths import CACHE_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "lab07_regrade.json"
LAB = get_lab("07")


def grade(cache: Path, scratch: Path, baseline: Path) -> tuple[float, dict]:
    """Wall seconds of one authoritative run with ``cache`` as the grader's kit cache, and its result."""
    os.environ[CACHE_ENV] = str(cache)
    setup, cells = reference_cells(LAB)
    start = time.perf_counter()
    result = authoritative.run(LAB.number, "bench-learner", setup, cells, baseline, LAB.heldout_attacks, scratch,
                               make_sandbox("bwrap"))  # fmt: skip
    measured = {k: v for k, v in result["metrics"].items() if k != "train_seconds"}  # wall time: differs by run
    return time.perf_counter() - start, {k: v["passed"] for k, v in result["tests"].items()} | measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default: 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="doubleedge-bench-lab07-") as tmp:
        tmp = Path(tmp)
        os.environ[CACHE_ENV] = str(tmp / "baseline-cache")
        baseline = baseline_report(LAB, tmp / "baseline")
        first, again = [], []
        expected = None
        for run in range(1, args.repeat + 1):
            cold = tmp / f"cold-{run}"
            seconds, result = grade(cold / "cache", cold / "scratch", baseline)
            adopted = list((cold / "cache" / "trained").glob("*.safetensors"))
            if len(adopted) != 1:
                raise SystemExit(f"the first grade should leave one model in its cache, not {len(adopted)}")
            first.append(seconds)
            warm = tmp / f"warm-{run}"
            (warm / "cache" / "trained").mkdir(parents=True)
            shutil.copy(adopted[0], warm / "cache" / "trained")
            again_seconds, again_result = grade(warm / "cache", warm / "scratch", baseline)
            again.append(again_seconds)
            expected = expected or result
            if result != expected or again_result != expected:
                raise SystemExit(f"the results differ: {result} / {again_result} / {expected}")
            print(f"  run {run}/{args.repeat}: regrade {again[-1]:.1f} s, first grade {first[-1]:.1f} s", file=sys.stderr)
    subject, base = statistics.median(again), statistics.median(first)
    print(f"lab07 regrade vs first grade: {subject:.1f} s vs {base:.1f} s, ratio {subject / base:.2f}")
    write_comparison(RESULTS, "lab07 regrade vs first grade", args.repeat,
                     {"what": "authoritative run, the checker's model kept", "median": subject, "runs": again},
                     {"what": "authoritative run, empty cache", "median": base, "runs": first},
                     subject / base, result=expected)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
