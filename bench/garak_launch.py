"""Starting garak: scans forked from a launcher that has garak's libraries loaded, against a new
Python for every scan.

Run from the repository root: ``.venv/bin/python bench/garak_launch.py [--repeat 10]``.
Each of ``--repeat`` rounds runs Lab 01's scan of the unhardened reference bot twice, one after
the other: once through this process's launcher (``scan/forkserver.py``), once with
``DOUBLEEDGE_GARAK_FORK=off`` (a new ``python -m doubleedge.scan.launch``, as before). Measured:
the CPU seconds of the garak processes (the bot answers in this process, the same in both).
The launcher's own start-up, once, is counted in the subject, spread over its scans.

Both must give the same attempts (prompts, replies, detector results; the bot's port and the
attempts' ids aside), else the script stops. Prints the medians per scan and their ratio, writes
bench/results/garak_launch.json, and exits 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_comparison

from doubleedge.labs import get_lab
from doubleedge.scan import forkserver
from doubleedge.scan.runner import garak_env

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "garak_launch.json"
LAB = get_lab("01")


def attempts(folder: Path) -> list[dict]:
    """The scan's attempts as garak reported them, without what changes from run to run."""
    report = folder / "reports" / "scan.report.jsonl"
    lines = re.sub(r"127\.0\.0\.1:\d+", "HOST", report.read_text("utf-8")).splitlines()
    return [{k: v for k, v in r.items() if k != "uuid"} for r in map(json.loads, lines) if r.get("entry_type") == "attempt"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launcher_cpu(pid: int) -> float:
    """The launcher's CPU and its ended children's (it waits for every garak process it forks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="scans of each kind (default: 10)")
    args = parser.parse_args(argv)
    if not forkserver.available():
        raise SystemExit("no launcher on this system (it needs Linux's pidfds): nothing to compare")
    app = LAB.target.build("reference", "none", None)
    fresh, forked_total, expected = [], 0.0, None
    with tempfile.TemporaryDirectory(prefix="doubleedge-bench-garak-") as tmp:
        for run in range(1, args.repeat + 1):
            LAB.target.scan(app, LAB.scan, Path(tmp) / f"forked-{run}")
            os.environ[forkserver.ENV] = "off"
            before = children_cpu()
            LAB.target.scan(app, LAB.scan, Path(tmp) / f"fresh-{run}")
            fresh.append(children_cpu() - before)
            del os.environ[forkserver.ENV]
            expected = expected or attempts(Path(tmp) / f"fresh-{run}")
            if attempts(Path(tmp) / f"forked-{run}") != expected or attempts(Path(tmp) / f"fresh-{run}") != expected:
                raise SystemExit("the scans' attempts differ")
            print(f"  round {run}/{args.repeat}: a new Python {fresh[-1]:.2f} s of CPU", file=sys.stderr)
        forked_total = launcher_cpu(forkserver.launcher(garak_env(Path(tmp))).pid)  # the scans' launcher
    subject, base = forked_total / args.repeat, statistics.median(fresh)
    print(f"garak scan, forked vs a new Python: {subject:.2f} s vs {base:.2f} s of CPU per scan, ratio {subject / base:.2f}")
    write_comparison(RESULTS, "garak scan, forked vs a new Python", args.repeat,
                     {"what": "CPU per scan, forked from the launcher (its start-up included)", "mean": subject},
                     {"what": "CPU per scan, python -m doubleedge.scan.launch", "median": base, "runs": fresh},
                     subject / base, same_attempts=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
