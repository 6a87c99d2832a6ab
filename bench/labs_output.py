"""Lab 04's full garak scan of the web chat, against garak's own floor (test.Blank).

Run from the repository root: ``.venv/bin/python bench/labs_output.py [--repeat N]``.
The scan (``scan_webchat``) is two garak runs, one per endpoint of the web app; the
floor runs the same two specs against garak's ``test.Blank`` generator (a target that
answers ""), so the ratio is what serving and rendering the web app adds to garak.
Both the unhardened app and the reference solution are timed. Target: the full scan
under 60 s on a 2-core machine. Prints a table, writes bench/results/labs_output.json,
exits 0 either way: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from doubleedge.defenses import lab04 as solution
from doubleedge.grading.lab04 import fresh_app
from doubleedge.scan import run_garak, scan_for_lab
from doubleedge.scan.webchat import scan_webchat, split_by_endpoint
from doubleedge.target.webchat import Policy

RESULTS = Path(__file__).resolve().parent / "results" / "labs_output.json"
TARGET_SECONDS = 60.0
HARDENED = Policy("lab04", solution.render, solution.order_query, solution.CONTENT_SECURITY_POLICY)


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = scan_for_lab("04")
    runs: dict[str, list[float]] = {"unhardened": [], "hardened": [], "floor": []}
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lab04-") as tmp:
        for i in range(args.repeat):
            for name, policy in (("unhardened", Policy()), ("hardened", HARDENED)):
                seconds, report = timed(
                    lambda p=policy, n=name, i=i: scan_webchat(fresh_app("bench", p), workdir=Path(tmp) / f"{n}-{i}")
                )
                if not report.attempts:
                    raise RuntimeError("garak evaluated no attempts")
                runs[name].append(seconds)
                rates[name] = report.overall_attack_success_rate
            start = time.perf_counter()
            for endpoint, part in split_by_endpoint(spec).items():
                floor = run_garak(part, Path(tmp) / f"floor-{i}{endpoint.replace('/', '-')}", target_type="test.Blank")
                if not floor.attempts:
                    raise RuntimeError("garak evaluated no attempts on test.Blank")
            runs["floor"].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "repeat": args.repeat,
        "probes": len(spec.probes),
        "runs_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "ratio_to_floor": {k: round(medians[k] / medians["floor"], 2) for k in ("unhardened", "hardened")},
        "attack_success_rate": {k: round(v, 4) for k, v in rates.items()},
        "target": {
            f"full scan < {TARGET_SECONDS:g} s": max(medians["unhardened"], medians["hardened"]) < TARGET_SECONDS
        },
    }
    print(f"{'subject':12} {'median s':>9} {'x floor':>8} {'ASR':>7}")
    for name in ("unhardened", "hardened"):
        print(f"{name:12} {medians[name]:9.2f} {result['ratio_to_floor'][name]:8.2f} {rates[name]:7.1%}")
    print(f"{'floor':12} {medians['floor']:9.2f}")
    for target, met in result["target"].items():
        print(("PASS " if met else "MISS ") + target)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
