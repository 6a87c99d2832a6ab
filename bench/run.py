"""Double Edge benchmarks: speed as ratios against a baseline measured in the same run.

Run from the repository root: ``.venv/bin/python bench/run.py [--repeat N]`` (``make bench``).
Each benchmark alternates its subject and its baseline ``--repeat`` times and reports
the medians and their ratio, so the figures compare across machines even when the
seconds do not. Prints a table and writes the same figures to bench/results/latest.json.
Everything runs on loopback. Exits 0 even when a target is missed: this is a report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from doubleedge.defenses import get_defense
from doubleedge.evaluate import benign_set, load_attacks
from doubleedge.grading.labs import get_lab
from doubleedge.grading.pipeline import (
    CourseFolder,
    Submission,
    baseline_report,
    grade_one,
    tool_env,
)
from doubleedge.models import ChatModel, Message, ReferenceModel
from doubleedge.paths import graders_dir
from doubleedge.scan import BASELINE, ScanSpec, run_garak, scan_bot, scan_for_lab
from doubleedge.target import SupportBot, derive_secret

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
LEARNER = "bench"
SECONDS = "s"
RATE = "replies/s"
SCAN_MAX_RATIO = 1.3  # the targets, set for a 2-core machine
SCAN_MAX_SECONDS = 30.0
TARGET_CORES = 2
MIN_MEASURE_SECONDS = 0.5
TRIVIAL = "trivial"


@dataclass
class Comparison:
    """One benchmark: every run of the subject and of its baseline, and the targets met."""

    name: str
    unit: str
    subject: str
    baseline: str
    subject_runs: list[float]
    baseline_runs: list[float]
    targets: dict[str, bool] = field(default_factory=dict)

    @property
    def subject_median(self) -> float:
        return statistics.median(self.subject_runs)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_runs)

    @property
    def ratio(self) -> float:
        """The subject's cost in baselines (above 1: slower), so every ratio reads the same way."""
        if self.unit == RATE:
            return self.baseline_median / self.subject_median
        return self.subject_median / self.baseline_median

    def as_dict(self) -> dict:
        """The JSON form, every run included so a reader can judge the spread."""
        return {
            "name": self.name,
            "unit": self.unit,
            "subject": {"what": self.subject, "median": self.subject_median, "runs": self.subject_runs},
            "baseline": {"what": self.baseline, "median": self.baseline_median, "runs": self.baseline_runs},
            "ratio": self.ratio,
            "targets": self.targets,
        }


def alternate(
    name: str, repeat: int, subject: Callable[[], float], baseline: Callable[[], float], unit: str
) -> tuple[list[float], list[float]]:
    """Run subject then baseline, ``repeat`` times, so drift in machine load hits both alike."""
    subject_runs, baseline_runs = [], []
    for run in range(1, repeat + 1):
        subject_runs.append(subject())
        baseline_runs.append(baseline())
        print(
            f"  {name} {run}/{repeat}: {subject_runs[-1]:.3f} vs {baseline_runs[-1]:.3f} {unit}",
            file=sys.stderr,
            flush=True,
        )
    return subject_runs, baseline_runs


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Wall time of one call, with its result (kept so the caller can check the work was done)."""
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def fresh_dir(parent: Path, prefix: str) -> Path:
    """A new folder per run: garak and nbgrader must not find a previous run's files."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


# 1. lab01 scan vs garak floor ---------------------------------------------------------


def bench_scan(repeat: int, tmp: Path, spec: ScanSpec, name: str, with_targets: bool) -> Comparison:
    """A garak scan over HTTP of the unhardened bot against garak with a target that answers ""
    (its own floor), on the same spec."""
    secret = derive_secret(LEARNER)
    bot = SupportBot(ReferenceModel(), secret=secret, defense=get_defense("none", secret))

    def scan() -> float:
        return checked_scan(lambda: scan_bot(bot, spec, fresh_dir(tmp, "scan-")))

    def floor() -> float:
        return checked_scan(lambda: run_garak(spec, fresh_dir(tmp, "floor-"), target_type="test.Blank"))

    scans, floors = alternate(name, repeat, scan, floor, SECONDS)
    result = Comparison(
        name,
        SECONDS,
        f"scan_bot(unhardened reference bot, {spec.lab} spec)",
        f"run_garak({spec.lab} spec, target_type='test.Blank')",
        scans,
        floors,
    )
    if with_targets:
        result.targets = {
            f"scan/floor <= {SCAN_MAX_RATIO}x": result.ratio <= SCAN_MAX_RATIO,
            f"scan < {SCAN_MAX_SECONDS:g} s": result.subject_median < SCAN_MAX_SECONDS,
        }
    return result


def checked_scan(action: Callable[[], object]) -> float:
    """Time a scan; a report without attempts means garak ran nothing and the time is meaningless."""
    seconds, report = timed(action)
    if not report.attempts:
        raise RuntimeError(f"garak evaluated no attempts: {report.report_path}")
    return seconds


# 2. autograde lab01 vs trivial --------------------------------------------------------


def bench_grading(repeat: int, tmp: Path) -> Comparison:
    """Grading one Lab 01 submission end to end against nbgrader autograding a one-line notebook."""
    lab = get_lab("01")
    course = CourseFolder(tmp / "course", lab)
    course.prepare()
    baseline = baseline_report(lab, tmp / "baseline")
    submission = Submission(LEARNER, lab.source_notebook)
    trivial = trivial_course(tmp / "trivial")

    def lab01() -> float:
        seconds, row = timed(lambda: grade_one(course, submission, baseline, tmp))
        if row.notes or not row.max_score or row.score != row.max_score:
            raise RuntimeError(f"Lab 01 solution graded {row.score}/{row.max_score}: {row.notes}")
        return seconds

    name = "autograde lab01 vs trivial"
    graded, trivials = alternate(name, repeat, lab01, lambda: autograde_trivial(trivial), SECONDS)
    return Comparison(
        name,
        SECONDS,
        "grade_one(Lab 01 source notebook): autograde + authoritative re-run",
        "nbgrader autograde of a 1-point notebook (x = 1; assert x == 1)",
        graded,
        trivials,
    )


def trivial_course(root: Path) -> Path:
    """An nbgrader course with the project's config and a two-cell assignment, generated once."""
    source = root / "source" / TRIVIAL
    source.mkdir(parents=True)
    shutil.copy(graders_dir() / "nbgrader_config.py", root / "nbgrader_config.py")
    nbformat.write(trivial_notebook(), source / f"{TRIVIAL}.ipynb")
    nbgrader(root, "generate_assignment", TRIVIAL, "--force")
    submitted = root / "submitted" / LEARNER / TRIVIAL
    submitted.mkdir(parents=True)
    shutil.copy(source / f"{TRIVIAL}.ipynb", submitted / f"{TRIVIAL}.ipynb")
    return root


def trivial_notebook() -> nbformat.NotebookNode:
    """One solution cell and one 1-point test cell: nbgrader's cost with nothing to run."""
    cell = {"schema_version": 3, "task": False}
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "x = 1",
                metadata={"nbgrader": cell | {"grade": False, "grade_id": "answer", "locked": False, "solution": True}},
            ),
            nbformat.v4.new_code_cell(
                "assert x == 1",
                metadata={
                    "nbgrader": cell
                    | {"grade": True, "grade_id": "test_answer", "locked": True, "solution": False, "points": 1}
                },
            ),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def autograde_trivial(root: Path) -> float:
    """Time ``nbgrader autograde`` of the trivial assignment; check it scored the point."""
    seconds, _ = timed(lambda: nbgrader(root, "autograde", TRIVIAL, "--student", LEARNER, "--force"))
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        score = gradebook.find_submission(TRIVIAL, LEARNER).score
    if score != 1:
        raise RuntimeError(f"trivial notebook scored {score}/1")
    return seconds


def nbgrader(root: Path, *args: str) -> None:
    """nbgrader as the grading pipeline runs it: a subprocess with the venv's bin first on PATH."""
    command = [str(Path(sys.executable).with_name("nbgrader")), *args]
    done = subprocess.run(
        command, cwd=root, env=tool_env(None), capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {args[0]} failed:\n{(done.stdout + done.stderr)[-2000:]}")


# 3. reference model vs echo -----------------------------------------------------------


class EchoModel(ChatModel):
    """The cheapest possible model: the bot's own cost (retrieval, prompt building) remains."""

    name = "echo"

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        return next((m.content for m in reversed(messages) if m.role == "user"), "")


def bench_model(repeat: int) -> Comparison:
    """The reference model's replies per second against an echo model behind the same bot."""
    lab = get_lab("01")
    messages = [c.question for c in benign_set()] + [a.prompt for a in load_attacks(lab.heldout_attacks)]
    secret = derive_secret(LEARNER)
    reference = SupportBot(ReferenceModel(), secret=secret)
    echo = SupportBot(EchoModel(), secret=secret)
    for bot in (reference, echo):  # warm up: compiled regexes, cached data sets
        replies_per_second(bot, messages, min_seconds=0)
    name = "reference model vs echo"
    rates, echoes = alternate(
        name, repeat, lambda: replies_per_second(reference, messages), lambda: replies_per_second(echo, messages), RATE
    )
    return Comparison(
        name,
        RATE,
        f"SupportBot(ReferenceModel()).reply, {len(messages)} messages",
        "SupportBot(EchoModel()).reply, same messages",
        rates,
        echoes,
    )


def replies_per_second(bot: SupportBot, messages: list[str], min_seconds: float = MIN_MEASURE_SECONDS) -> float:
    """Whole passes over ``messages`` until ``min_seconds`` have passed, so timer noise is small."""
    replies, start = 0, time.perf_counter()
    while True:
        for message in messages:
            bot.reply(message)
        replies += len(messages)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return replies / elapsed


# Report -------------------------------------------------------------------------------


def machine() -> dict:
    """What the figures depend on, so two result files can be compared fairly."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return {
        "nproc": len(cores),
        "python": platform.python_version(),
        "garak": version("garak"),
        "nbgrader": version("nbgrader"),
        "platform": platform.platform(),
        "commit": git_describe(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_comparison(path: Path, name: str, repeat: int, subject: dict, baseline: dict, ratio: float, **extra) -> None:
    """One script's comparison as ``bench/results/<name>.json``, with the machine it was measured on."""
    payload = {"machine": machine(), "repeat": repeat, "name": name, "subject": subject, "baseline": baseline,
               "ratio": ratio} | extra  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
    print(f"figures written to {path.relative_to(Path(__file__).resolve().parents[1])}")


def git_describe() -> str:
    """The commit measured (``-dirty`` when the tree has local changes)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def table(results: list[Comparison], info: dict) -> str:
    """The results as a plain-text table, then the targets."""
    lines = [
        f"Double Edge benchmarks: {info['nproc']} cores, Python {info['python']}, garak {info['garak']}, "
        f"{info['commit']}",
        "",
        f"{'benchmark':28} {'subject':>18} {'baseline':>18} {'ratio':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.name:28} {figure(r.subject_median, r.unit):>18} "
            f"{figure(r.baseline_median, r.unit):>18} {r.ratio:6.2f}x"
        )
    lines += ["", "ratio: the subject's cost in baselines (time over time; baseline rate over subject rate)"]
    for r in results:
        for target, met in r.targets.items():
            lines.append(f"target {r.name}: {target}: {'PASS' if met else 'MISS'}")
    if info["nproc"] != TARGET_CORES:
        lines.append(f"(the targets are set for {TARGET_CORES} cores; this machine has {info['nproc']})")
    return "\n".join(lines)


def figure(value: float, unit: str) -> str:
    """Rates are large and noisy: whole numbers; seconds to the hundredth."""
    return f"{value:,.0f} {unit}" if unit == RATE else f"{value:.2f} {unit}"


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top.add_argument("--repeat", type=int, default=3, help="runs of each subject and baseline (default: 3)")
    args = top.parse_args(argv)
    if args.repeat < 1:
        top.error("--repeat must be at least 1")
    info = machine()
    with tempfile.TemporaryDirectory(prefix="doubleedge-bench-") as tmp:
        results = [
            bench_scan(args.repeat, Path(tmp), scan_for_lab("01"), "lab01 scan vs garak floor", with_targets=True),
            bench_scan(args.repeat, Path(tmp), BASELINE, "baseline scan vs garak floor", with_targets=False),
            bench_grading(args.repeat, Path(tmp)),
            bench_model(args.repeat),
        ]
    print(table(results, info))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "repeat": args.repeat, "benchmarks": [r.as_dict() for r in results]}
    RESULTS.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
    print(f"\nfigures written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
