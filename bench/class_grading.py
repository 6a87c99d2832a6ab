"""Grading a class: wall time with N workers against serial, and per submission against a trivial notebook.

Run from the repository root: ``.venv/bin/python bench/class_grading.py [--learners 40] [--workers 1,2]``.
It builds a class of Lab 01 submissions (the whole notebook, its two garak scans
included: most learners with working solutions, some with wrong answers or untouched
stubs), prepares the course folder and the baseline scan once (outside the timings),
then grades the whole class in the sandbox once per worker count, each time in a
fresh copy of the prepared course folder. The baseline is ``nbgrader autograde`` of a
one-line notebook with the project's config, measured in the same run (bench/run.py).

Prints a table, checks that every worker count gives the same CSV, extrapolates to
100 submissions against the target (under 5 minutes on 2 cores), and writes the
figures to bench/results/class_grading.json. Exits 0 even when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import autograde_trivial, machine, trivial_course

from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import (
    GRADING_DIR,
    CourseFolder,
    Submission,
    baseline_report,
    grade_prepared,
    write_csv,
)
from doubleedge.grading.sandbox import make_sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "class_grading.json"
TARGET_SUBMISSIONS = 100
TARGET_SECONDS = 300.0
LAB = get_lab("01")


def build_class(folder: Path, learners: int, release: Path) -> list[Submission]:
    """Four in five with working solutions, one in ten with a wrong scan reading, the rest untouched."""
    source = nbformat.read(LAB.source_notebook, as_version=4)
    stub = nbformat.read(release, as_version=4)
    submissions = []
    for index in range(learners):
        name = f"learner{index:03d}"
        if index % 10 == 9:
            nb = stub
        else:
            nb = nbformat.reads(nbformat.writes(source), as_version=4)
            if index % 10 == 4:
                for cell in nb.cells:
                    if cell.metadata.get("nbgrader", {}).get("grade_id") == "scan_answers":
                        cell.source = cell.source.replace("0.82", "0.5")
        path = folder / name / f"{LAB.slug}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        submissions.append(Submission(name, path))
    return submissions


def grade_class(prepared: Path, work: Path, submissions, baseline: Path, workers: int) -> tuple[float, str]:
    """Seconds to grade the whole class with ``workers``, and the CSV it wrote."""
    root = work / f"course-{workers}"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns("workers", "scratch"))
    course = CourseFolder(root, LAB)
    start = time.perf_counter()
    rows = grade_prepared(course, submissions, baseline, workers=workers, box=make_sandbox("bwrap"))
    seconds = time.perf_counter() - start
    write_csv(rows, work / f"grades-{workers}.csv")
    failed = [r.learner for r in rows if any("grading process" in n or "autograde:" in n for n in r.notes)]
    if failed:
        raise RuntimeError(f"grading failed for {failed[:5]}: the timing means nothing")
    return seconds, (work / f"grades-{workers}.csv").read_text("utf-8")


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--learners", type=int, default=40)
    top.add_argument("--workers", default="1,2", help="comma-separated worker counts (default: 1,2)")
    top.add_argument("--trivial-repeat", type=int, default=5)
    args = top.parse_args(argv)
    counts = sorted({int(x) for x in args.workers.split(",")})
    info = machine()
    with tempfile.TemporaryDirectory(prefix="doubleedge-class-") as tmp:
        work = Path(tmp)
        prepared = work / "prepared"
        course = CourseFolder(prepared, LAB)
        course.prepare()
        baseline = baseline_report(LAB, prepared / GRADING_DIR / "baseline")
        release = prepared / "release" / LAB.slug / f"{LAB.slug}.ipynb"
        submissions = build_class(work / "submissions", args.learners, release)
        trivial = trivial_course(work / "trivial")
        trivials = [autograde_trivial(trivial) for _ in range(args.trivial_repeat)]
        walls, csvs = {}, {}
        for workers in counts:
            print(f"  grading {args.learners} submissions with {workers} worker(s)...", file=sys.stderr, flush=True)
            walls[workers], csvs[workers] = grade_class(prepared, work, submissions, baseline, workers)
            print(f"  {workers} worker(s): {walls[workers]:.1f} s", file=sys.stderr, flush=True)
    same = len(set(csvs.values())) == 1
    trivial_median = statistics.median(trivials)
    serial = walls.get(1)
    best = min(walls, key=walls.get)
    per_submission = {w: s / args.learners for w, s in walls.items()}
    projected = per_submission[best] * TARGET_SUBMISSIONS
    lines = [
        f"Class grading: {args.learners} Lab 01 submissions, {info['nproc']} cores, {info['commit']}",
        "",
        f"{'workers':>8} {'wall':>10} {'per submission':>15} {'speed-up':>9} {'vs trivial':>11}",
    ]
    for w in counts:
        speedup = f"{serial / walls[w]:8.2f}x" if serial else "      n/a"
        lines.append(f"{w:8d} {walls[w]:9.1f}s {per_submission[w]:14.2f}s {speedup} "
                     f"{per_submission[w] / trivial_median:10.1f}x")  # fmt: skip
    lines += [
        "",
        f"trivial notebook (nbgrader autograde, x = 1): {trivial_median:.2f} s (median of {len(trivials)})",
        f"same CSV for every worker count: {'yes' if same else 'NO'}",
        f"{TARGET_SUBMISSIONS} submissions with {best} workers: {projected:.0f} s projected "
        f"(target < {TARGET_SECONDS:.0f} s): {'PASS' if projected < TARGET_SECONDS else 'MISS'}",
    ]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "learners": args.learners,
        "wall_seconds": walls,
        "per_submission_seconds": per_submission,
        "trivial_autograde_seconds": trivials,
        "same_csv": same,
        "projected_100_seconds": projected,
        "target_met": projected < TARGET_SECONDS,
    }
    RESULTS.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
    print(f"\nfigures written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
