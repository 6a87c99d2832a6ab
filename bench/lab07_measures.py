"""Lab 07's measures on a trained model: the exposures of every canary and the perplexity on clean
text, as the notebook, the grader and the figures take them, against their first versions.

Run from the repository root: ``.venv/bin/python bench/lab07_measures.py [--repeat 3]``.
The model is the lab's unhardened one (trained once, or read from the kit cache, outside the
timings); the canaries are the lab's and the held-out ones (29 exposures of 1,001 sequences each).

* subject: ``log_perplexities`` and ``perplexity`` as they run: a canary's prefix runs through the
  model once for all its candidates, and the clean text's chunks run in batches;
* baseline: the same calls with ``share_prefix=False`` and ``batch=1``: every candidate's whole
  sequence, and one chunk at a time (the first versions).

Both must give the same numbers, bit for bit (else the script stops). Prints the medians of CPU
seconds and their ratio, writes bench/results/lab07_measures.json, and exits 0: this is a report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_comparison

from doubleedge.grading import lab07
from doubleedge.memorization import clean_heldout_text, lab_canaries, train
from doubleedge.memorization.exposure import candidates, log_perplexities, perplexity

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "lab07_measures.json"


def measures(model, canaries, first_versions: bool) -> tuple[float, list]:
    """CPU seconds of every canary's candidates and the clean text's perplexity, and the numbers."""
    text = clean_heldout_text()
    start = time.process_time()
    numbers = [log_perplexities(model, c.prefix, candidates(c), share_prefix=not first_versions) for c in canaries]
    numbers.append(perplexity(model, text, batch=1 if first_versions else 128))
    return time.process_time() - start, numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default: 3)")
    args = parser.parse_args(argv)
    model = train(*lab07.public_trainings()[0]).model
    canaries = [*lab_canaries(), *lab07.grading_canaries()]
    now, first = [], []
    for run in range(1, args.repeat + 1):
        seconds, numbers = measures(model, canaries, first_versions=False)
        base_seconds, base_numbers = measures(model, canaries, first_versions=True)
        if numbers != base_numbers:
            raise SystemExit("the measures differ from their first versions")
        now.append(seconds)
        first.append(base_seconds)
        print(f"  run {run}/{args.repeat}: {seconds:.2f} s, first versions {base_seconds:.2f} s", file=sys.stderr)
    subject, base = statistics.median(now), statistics.median(first)
    print(f"lab07 measures vs their first versions: {subject:.2f} s vs {base:.2f} s of CPU, ratio {subject / base:.2f}")
    write_comparison(RESULTS, "lab07 measures vs their first versions", args.repeat,
                     {"what": "shared prefix, batched chunks", "median": subject, "runs": now},
                     {"what": "whole sequences, a chunk at a time", "median": base, "runs": first},
                     subject / base, canaries=len(canaries), same_numbers=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
