"""Grading a class on Dask: serial against a local cluster of 1 and 2 workers, and where one submission's time goes.

Run from the repository root: ``.venv/bin/python bench/dask_grading.py [--learners 20]``.
It builds a class of Lab 01 submissions as ``bench/class_grading.py`` does, prepares
the course folder and the baseline scan once (outside the timings), then grades the
whole class three ways in the same run, each in a fresh copy of the course folder:
serially (``grade_prepared`` with one worker, the baseline of the ratios), and on a
local Dask cluster with 1 and with 2 worker processes (cluster start-up included).

It reports the cluster's speed-up over serial, the scaling efficiency from 1 to 2
workers (``T1 / (2 * T2)``, target >= 0.8), checks that all three wrote the same CSV,
projects 100 submissions (target: under 5 minutes on 2 cores), and breaks the serial
run's time per submission down into nbgrader autograde (the learner's notebook in a
sandboxed kernel, its two garak scans included), the authoritative re-run, and the
rest, against ``nbgrader autograde`` of a one-line notebook (kernel start-up and
nbgrader's own cost). Figures go to ``bench/results/dask_grading.json``. Exits 0
even when a target is missed: this is a report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from class_grading import build_class
from run import autograde_trivial, machine, trivial_course

from doubleedge.grading import cluster, pipeline
from doubleedge.grading.labs import get_lab
from doubleedge.grading.sandbox import make_sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "dask_grading.json"
TARGET_SUBMISSIONS = 100
TARGET_SECONDS = 300.0
TARGET_EFFICIENCY = 0.8
LAB = get_lab("01")


class PhaseTimer:
    """Seconds spent in the pipeline's two heavy steps, summed over a serial run (same process only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._originals = {}

    def __enter__(self) -> PhaseTimer:
        for owner, name, phase in (
            (pipeline, "_autograde", "autograde"),
            (pipeline.authoritative, "run", "authoritative"),
        ):
            original = getattr(owner, name)
            self._originals[(owner, name)] = original
            setattr(owner, name, self._timed(original, phase))
        return self

    def _timed(self, function, phase: str):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return wrapper

    def __exit__(self, *exc) -> None:
        for (owner, name), original in self._originals.items():
            setattr(owner, name, original)


def fresh_course(prepared: Path, root: Path) -> pipeline.CourseFolder:
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("workers", "scratch", "dask"))
    return pipeline.CourseFolder(root, LAB)


def checked(rows: list[pipeline.GradeRow], csv_path: Path) -> str:
    failed = [r.learner for r in rows if any("grading process" in n or "autograde:" in n for n in r.notes)]
    if failed:
        raise RuntimeError(f"grading failed for {failed[:5]}: the timing means nothing")
    pipeline.write_csv(rows, csv_path)
    return csv_path.read_text("utf-8")


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 20: with fewer, the two clusters' start-up (a few seconds each) weighs on the projection to 100
    top.add_argument("--learners", type=int, default=20)
    top.add_argument("--trivial-repeat", type=int, default=3)
    args = top.parse_args(argv)
    info = machine()
    box = make_sandbox("bwrap")
    with tempfile.TemporaryDirectory(prefix="doubleedge-dask-") as tmp:
        work = Path(tmp)
        prepared = work / "prepared"
        course = pipeline.CourseFolder(prepared, LAB)
        course.prepare()
        baseline = pipeline.baseline_report(LAB, prepared / pipeline.GRADING_DIR / "baseline")
        release = prepared / "release" / LAB.slug / f"{LAB.slug}.ipynb"
        submissions = build_class(work / "submissions", args.learners, release)
        trivial_root = trivial_course(work / "trivial")
        trivials = [autograde_trivial(trivial_root) for _ in range(args.trivial_repeat)]
        walls, csvs = {}, {}

        print(f"  serial: {args.learners} submissions...", file=sys.stderr, flush=True)
        serial_course = fresh_course(prepared, work / "serial")
        with PhaseTimer() as phases:
            start = time.perf_counter()
            rows = pipeline.grade_prepared(serial_course, submissions, baseline, workers=1, box=box)
            walls["serial"] = time.perf_counter() - start
        csvs["serial"] = checked(rows, work / "serial.csv")
        for workers in (1, 2):
            name = f"dask {workers}"
            print(f"  {name} worker(s)...", file=sys.stderr, flush=True)
            dask_course = fresh_course(prepared, work / f"dask{workers}")
            start = time.perf_counter()
            rows = cluster.grade(dask_course, submissions, baseline, cluster.LOCAL, workers=workers, box=box)
            walls[name] = time.perf_counter() - start
            csvs[name] = checked(rows, work / f"dask{workers}.csv")
            print(f"  {name}: {walls[name]:.1f} s", file=sys.stderr, flush=True)

    n = args.learners
    same = len(set(csvs.values())) == 1
    trivial = statistics.median(trivials)
    efficiency = walls["dask 1"] / (2 * walls["dask 2"])
    projected = walls["dask 2"] / n * TARGET_SUBMISSIONS
    per = {phase: s / n for phase, s in phases.seconds.items()}
    per["rest (reading, copying, gradebook)"] = walls["serial"] / n - sum(per.values())
    lines = [
        f"Grading on Dask: {n} Lab 01 submissions, {info['nproc']} cores, {info['commit']}",
        "",
        f"{'run':>10} {'wall':>9} {'per submission':>15} {'vs serial':>10}",
        *(f"{k:>10} {w:8.1f}s {w / n:14.2f}s {walls['serial'] / w:9.2f}x" for k, w in walls.items()),
        "",
        f"scaling efficiency 1 -> 2 workers: {efficiency:.2f} (target >= {TARGET_EFFICIENCY}): "
        f"{'PASS' if efficiency >= TARGET_EFFICIENCY else 'MISS'}",
        f"same CSV serial, dask 1, dask 2: {'yes' if same else 'NO'}",
        f"{TARGET_SUBMISSIONS} submissions on dask 2: {projected:.0f} s projected (target < {TARGET_SECONDS:.0f} s): "
        f"{'PASS' if projected < TARGET_SECONDS else 'MISS'}",
        "",
        "one submission, serial (seconds; x = nbgrader autograde of a one-line notebook):",
        *(f"  {phase:<36} {s:6.2f}s {s / trivial:5.1f}x" for phase, s in per.items()),
        f"  {'trivial notebook (x = 1)':<36} {trivial:6.2f}s (median of {len(trivials)})",
    ]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "learners": n,
        "wall_seconds": walls,
        "per_submission_phases": per,
        "trivial_autograde_seconds": trivials,
        "scaling_efficiency": efficiency,
        "same_csv": same,
        "projected_100_seconds": projected,
    }
    RESULTS.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
    print(f"\nfigures written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
