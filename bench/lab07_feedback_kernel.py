"""Lab 07's notebook as the grader's feedback kernel runs it, against the same notebook as a
learner runs it: what skipping the retraining and re-scan of the hardened model saves per learner.

Run from the repository root: ``.venv/bin/python bench/lab07_feedback_kernel.py [--repeat 3]``.
Both run the source notebook (the reference solution) top to bottom in a fresh Jupyter kernel,
with its visible tests only (as the grader's kernel does), without the sandbox, progress bars, the
real model or a held-out set, each with a fresh kit cache that holds what the grader's kernel cache
held when graded kernels ran every cell: the notebook's unhardened and DP-SGD models and its scan
of the unhardened one (trained once, outside the timings):

* baseline, every cell, as graded kernels ran it before: the hardened model is trained, measured
  and scanned;
* subject, the grader's feedback run now (``DOUBLEEDGE_GRADED_KERNEL=1``, as grading/sandbox.py
  sets it): those cells print a note (selfcheck.graded_kernel).

Measures the CPU seconds of the kernel and every process under it (garak's), which the grader pays for
each learner, and the wall time. Prints the medians and their ratio, writes
bench/results/lab07_feedback_kernel.json, and exits 0: this is a report, not a test.
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

import nbformat
import psutil
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import write_comparison

from doubleedge.grading.lab07 import GRADER_RETRAINS
from doubleedge.grading.pipeline import visible_part
from doubleedge.labs import get_lab
from doubleedge.paths import CACHE_ENV
from doubleedge.progressbar import BARS_ENV
from doubleedge.realmodel import ENV as REAL_MODEL_ENV
from doubleedge.selfcheck import GRADED_KERNEL_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "lab07_feedback_kernel.json"
LAB = get_lab("07")
GRADERS_ENV = "DOUBLEEDGE_GRADERS_DIR"  # pointed at a missing folder: no held-out set, as on a learner's machine


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of ``process`` and everything under it: each live process with the children it
    reaped (garak's processes are reaped by their launcher, which the kernel started)."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        try:
            cpu = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += cpu.user + cpu.system + cpu.children_user + cpu.children_system
    return total


def run_notebook(kernel_cache: Path, work: Path, graded: bool) -> tuple[float, float, str]:
    """(kernel CPU seconds, wall seconds, the retraining cell's output) of one top-to-bottom run."""
    shutil.copytree(kernel_cache, work / "cache")
    shutil.copytree(LAB.source_notebook.parent, work / "lab")
    notebook = nbformat.read(work / "lab" / LAB.source_notebook.name, as_version=4)
    for cell in notebook.cells:
        cell.source = visible_part(cell.source)  # the grader's kernel runs the visible tests only
    env = {k: v for k, v in os.environ.items() if k != GRADED_KERNEL_ENV}
    env |= {CACHE_ENV: str(work / "cache"), BARS_ENV: "off", REAL_MODEL_ENV: "off", GRADERS_ENV: str(work / "none")}
    env |= {GRADED_KERNEL_ENV: "1"} if graded else {}
    client = NotebookClient(notebook, timeout=1800, resources={"metadata": {"path": str(work / "lab")}})
    start = time.perf_counter()
    with client.setup_kernel(env=env):
        kernel = psutil.Process(client.km.provisioner.process.pid)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)  # a failing cell stops the run: the figures would lie
        seconds = tree_cpu(kernel)
    wall = time.perf_counter() - start
    retrain = next(c for c in notebook.cells if c.get("id") == "lab07-23")
    return seconds, wall, "".join(o.get("text", "") for o in retrain.outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default: 3)")
    args = parser.parse_args(argv)
    from doubleedge.grading import lab07
    from doubleedge.labs.lab07_memorization.judge import kernel_cache
    from doubleedge.memorization import TrainConfig, lab_canaries
    from doubleedge.memorization.train import save_trained, train

    with tempfile.TemporaryDirectory(prefix="doubleedge-bench-lab07-kernel-") as tmp:
        tmp = Path(tmp)
        os.environ[CACHE_ENV] = str(tmp / "grader-cache")
        kernel_cache(tmp / "kernel-cache")  # trained and scanned once, outside the timings
        dp = train(lab07.attack_corpus(lab_canaries()), TrainConfig(**lab07.DP_TRAINING))
        save_trained(dp, tmp / "kernel-cache" / "trained" / f"{dp.key}.safetensors")  # as graded kernels had it
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for index in range(args.repeat):
            for graded in (False, True):
                cpu, wall, output = run_notebook(tmp / "kernel-cache", tmp / f"run-{index}-{int(graded)}", graded)
                if (GRADER_RETRAINS in output) != graded:
                    sys.exit(f"the {'graded' if graded else 'every-cell'} run did not behave as such: {output[:200]!r}")
                runs[graded].append((cpu, wall))
                print(f"{'graded kernel' if graded else 'every cell':14} CPU {cpu:6.1f} s, wall {wall:6.1f} s")
    median = {g: {"cpu_seconds": round(statistics.median(c for c, _ in r), 1),
                  "wall_seconds": round(statistics.median(w for _, w in r), 1)} for g, r in runs.items()}  # fmt: skip
    ratio = round(median[True]["cpu_seconds"] / median[False]["cpu_seconds"], 3)
    print(f"graded kernel / every cell, CPU: {ratio:.2f}")
    write_comparison(RESULTS, "lab07_feedback_kernel", args.repeat, median[True], median[False], ratio,
                     unit="kernel CPU seconds (process and children), medians")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
