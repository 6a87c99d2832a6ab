"""Labs 02 and 03: each lab's full garak scan against garak's own floor, on 2 cores.

Run from the repository root: ``.venv/bin/python bench/labs_app.py [--repeat N]``.
For each lab, alternates the scan of the unhardened bot over HTTP (the scan learners
run first, with the most hits) and the same spec against garak's ``test.Blank``
target (garak's start-up and probe work alone), ``--repeat`` times, and reports the
medians, their ratio and whether the scan stays under the issue's 60 s. Prints a
table and writes bench/results/labs_app.json. Exits 0 even when a target is missed.
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
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from doubleedge.grading import lab02, lab03
from doubleedge.scan import run_garak, scan_bot, scan_for_lab

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "labs_app.json"
LEARNER = "bench"
MAX_SECONDS = 60.0  # the issue: each lab's full scan under 60 s on 2 cores
BOTS = {"02": lab02.unhardened_bot, "03": lab03.unhardened_bot}


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def bench_lab(lab: str, repeat: int, tmp: Path) -> dict:
    spec = scan_for_lab(lab)
    bot = BOTS[lab](LEARNER)
    scans, floors, attempts = [], [], 0
    for run in range(1, repeat + 1):
        seconds, report = timed(lambda: scan_bot(bot, spec, Path(tempfile.mkdtemp(prefix="scan-", dir=tmp))))
        attempts = report.attempts
        scans.append(seconds)
        seconds, floor = timed(
            lambda: run_garak(spec, Path(tempfile.mkdtemp(prefix="floor-", dir=tmp)), target_type="test.Blank")
        )
        if floor.attempts == 0:
            raise RuntimeError(f"lab {lab}: garak's floor run evaluated nothing")
        floors.append(seconds)
        print(f"  lab {lab} {run}/{repeat}: scan {scans[-1]:.2f} s, floor {floors[-1]:.2f} s", file=sys.stderr)
    scan, floor = statistics.median(scans), statistics.median(floors)
    return {
        "lab": lab,
        "probes": list(spec.probes),
        "attempts": attempts,
        "scan_seconds": {"median": scan, "runs": scans},
        "floor_seconds": {"median": floor, "runs": floors},
        "ratio": scan / floor,
        "targets": {f"scan under {MAX_SECONDS:.0f} s": scan < MAX_SECONDS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="doubleedge-bench-labs-") as tmp:
        results = [bench_lab(lab, args.repeat, Path(tmp)) for lab in BOTS]
    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "garak": version("garak")},
        "repeat": args.repeat,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'lab':4} {'attempts':>8} {'scan s':>8} {'floor s':>8} {'ratio':>6}  target")
    for r in results:
        met = "met" if all(r["targets"].values()) else "MISSED"
        print(
            f"{r['lab']:4} {r['attempts']:8d} {r['scan_seconds']['median']:8.2f} "
            f"{r['floor_seconds']['median']:8.2f} {r['ratio']:6.2f}  under {MAX_SECONDS:.0f} s: {met}"
        )
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
