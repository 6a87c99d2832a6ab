"""The authoritative score: the learner's extracted code, judged from outside it.

Code in the learner's kernel can rewrite or blank later test cells, so scores that
matter are never taken from the kernel. The grader extracts the learner's solution
cells and starts two fresh processes, each in its own sandbox (see sandbox.py):

* the **runner** (runner.py) runs the lab's setup cell and the learner's cells, then
  answers questions about them: values, calls, the learner's guards. It holds the
  learner's key, as the learner's own server does, and never the course key, and its
  sandbox holds none of the course's reference solutions (``doubleedge/defenses``, see
  :func:`reference_solutions`);
* the **checker** (checker.py) holds everything that decides the score:
  the model, the course key (the learner's secrets and the grading secret, see
  target/secrets.py), the held-out cases, the baseline scan and the
  checks (the lab's judge, doubleedge/labs/labNN_slug/judge.py). It builds the hardened target itself,
  from the learner's settings as data and with the learner's code (guards, policies)
  called over the pipe (remote.py), then attacks it with garak and the held-out cases,
  and asks it the held-out ordinary requests. Files the learner's code must open (model files, a trained model)
  go through a ``shared`` folder that both sandboxes can read and write; the checker writes them in
  new folders with random names and follows no link there (sharedfolder.py), and may write nowhere
  else on the host but its result folder. It reads the models the grader trained before
  (read-only) and leaves the ones it trains in its result folder, where the host checks and keeps
  them (memorization/train.py ``adopt_trained``): a class's regrade trains no model twice.

So learner code never runs in the process that computes or writes the result, and
never sees the held-out set as a file. This module is the host's side: :func:`run` starts
the pair and, when a cell hangs or kills the runner, starts it again without that cell
(nothing else is lost). The result maps each test cell's grade_id to ``{"passed": bool,
"reason": str}``, plus ``metrics`` and ``cell_errors``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import doubleedge
from doubleedge.labs import get_lab
from doubleedge.labs.base import Lab, ordinary_set
from doubleedge.paths import CACHE_ENV, KEPT_MODELS_ENV, trained_dir
from doubleedge.target.secrets import COURSE_KEY_ENV, LEARNER_ENV, course_key, learner_environment

# Graded code may not lean on the course's reference solutions. This text check gives the clear
# note; what stops it is that the runner's sandbox does not hold them (reference_solutions).
FORBIDDEN = re.compile(r"doubleedge\s*\.\s*defenses|from\s+doubleedge\s+import\s+[^\n]*\bdefenses\b")
FORBIDDEN_REASON = "imports the course's reference solution (doubleedge.defenses)"


def reference_solutions(lab: Lab) -> tuple[list[Path], list[Path]]:
    """(folders, kept files): every copy of ``doubleedge/defenses`` that a sandbox running learner
    code would show (the imported package's, and any other on the import path), and in them the
    modules the lab's own setup uses (``Lab.runner_defenses``). The runner and nbgrader's kernel
    get those folders empty but for those files, so no import, file read or compiled copy reaches
    a reference solution."""
    from doubleedge.grading.sandbox import python_paths

    candidates = {Path(p).resolve() / "defenses" for p in doubleedge.__path__}
    candidates |= {Path(p).resolve() / "doubleedge" / "defenses" for p in sys.path if p}
    visible = python_paths()
    folders = sorted(c for c in candidates if c.is_dir() and any(c.is_relative_to(v) for v in visible))
    kept = [f / f"{name}.py" for f in folders for name in lab.runner_defenses if (f / f"{name}.py").is_file()]
    return folders, kept


def run(
    lab: str,
    learner: str,
    setup: str,
    cells: dict[str, str],
    baseline: Path | None,
    heldout: Path,
    scratch: Path,
    sandbox,  # sandbox.Sandbox; imported lazily to keep this module light
) -> dict:
    """The authoritative result for one learner. Raises RuntimeError if it cannot be computed."""
    skipped = {k: FORBIDDEN_REASON for k, source in cells.items() if FORBIDDEN.search(source)}
    for _ in range(len(cells) + 2):
        result = _run_pair(lab, learner, setup, cells, skipped, baseline, heldout, scratch, sandbox)
        if "incomplete" not in result:
            return result
        if result["incomplete"] == "setup" or result["incomplete"] in skipped:
            raise RuntimeError(f"the grading process failed in the lab's setup: {result['why']}")
        skipped[result["incomplete"]] = result["why"]
    raise RuntimeError("the grading process kept failing")


def _run_pair(lab, learner, setup, cells, skipped, baseline, heldout, scratch, sandbox) -> dict:
    from doubleedge.grading.sandbox import kill_group, python

    limits = sandbox.limits
    attempt = len(skipped)
    runner_dir, checker_dir = Path(scratch) / f"runner-{attempt}", Path(scratch) / f"checker-{attempt}"
    shared = (Path(scratch) / f"shared-{attempt}").resolve()  # files the checker builds for the learner's code
    # (resolved: the sandbox binds the real path, and both sides must name it the same way)
    for folder in (runner_dir, checker_dir, shared):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    spec = {"setup": setup, "cells": cells, "skip": sorted(skipped), "cell_seconds": limits.cell_seconds,
            "call_seconds": limits.call_seconds, "helpers": get_lab(lab).runner_helpers}  # fmt: skip
    (runner_dir / "cells.json").write_text(json.dumps(spec), "utf-8")
    readonly = []
    if baseline is not None and Path(baseline).is_dir():  # Lab 06's graded copies: the class's, bound read-only
        checker_baseline = Path(baseline).resolve()
        readonly.append(checker_baseline)
    elif baseline is not None:  # a scan report, or Lab 07's trained model: keep its suffixes
        checker_baseline = checker_dir / f"baseline{''.join(Path(baseline).suffixes)}"
        shutil.copy(baseline, checker_baseline)
    shutil.copy(heldout, checker_dir / "heldout.jsonl")
    if ordinary_set(heldout).is_file():
        shutil.copy(ordinary_set(heldout), ordinary_set(checker_dir / "heldout.jsonl"))
    (checker_dir / "skipped.json").write_text(json.dumps(skipped), "utf-8")
    # The learner's cells as text, for checks of what the code says rather than what it does: the
    # runner cannot answer those, since the learner's own code could change its answer.
    (checker_dir / "sources.json").write_text(json.dumps(cells), "utf-8")
    to_runner_r, to_runner_w = os.pipe()
    from_runner_r, from_runner_w = os.pipe()
    runner_log = open(runner_dir / "stderr.log", "wb")
    hidden, kept = reference_solutions(get_lab(lab))
    try:
        runner = sandbox.popen(
            [python(), "-m", "doubleedge.grading.runner", str(runner_dir / "cells.json")],
            runner_dir,
            env=learner_environment(learner),  # the learner's key, never the course key
            shared=[shared],
            hidden=hidden,  # the course's reference solutions (the checker keeps them: Lab 10 judges the ladder)
            kept=kept,
            stdin=to_runner_r,
            stdout=from_runner_w,
            stderr=runner_log,
        )
    finally:
        os.close(to_runner_r)
        os.close(from_runner_w)
        runner_log.close()
    # The checker may write on the host only here and in the shared folder: its inputs are read-only,
    # so a link that learner code plants in the shared folder cannot make it change them.
    out = checker_dir / "out" / "result.json"
    out.parent.mkdir()
    command = [
        python(), "-m", "doubleedge.grading.checker",
        "--lab", lab, "--learner", learner,
        *(["--baseline", str(checker_baseline)] if baseline is not None else []),
        "--heldout", str(checker_dir / "heldout.jsonl"),
        "--shared", str(shared),
        "--skipped", str(checker_dir / "skipped.json"),
        "--sources", str(checker_dir / "sources.json"),
        "--out", str(out),
        "--runner-fds", f"{from_runner_r},{to_runner_w}",
        "--cell-seconds", str(limits.cell_seconds),
        "--call-seconds", str(limits.call_seconds),
    ]  # fmt: skip
    # Grading secrets need the course key. The checker's models: it reads the grader's (read-only)
    # and trains the others into its result folder; the grader adopts those below. The learner's
    # runner sees neither folder.
    checker_env = {LEARNER_ENV: learner, COURSE_KEY_ENV: course_key(), CACHE_ENV: str(out.parent / "cache")}
    if kept := _models_for_checker():
        checker_env[KEPT_MODELS_ENV] = str(kept)
        readonly.append(kept)
    try:
        done = sandbox.run(command, out.parent, env=checker_env, readonly=[checker_dir, *readonly], shared=[shared],
                           pass_fds=(from_runner_r, to_runner_w), timeout=limits.run_seconds)  # fmt: skip
    finally:
        os.close(from_runner_r)
        os.close(to_runner_w)
        kill_group(runner)
        runner.wait()
    if done.timed_out:
        raise RuntimeError(f"the grading process did not finish within {limits.run_seconds} s")
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"the grading process failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    trained = out.parent / "cache" / "trained"
    if kept and trained.is_dir() and any(trained.iterdir()):  # only Lab 07's checker trains
        from doubleedge.memorization.train import adopt_trained

        adopt_trained(trained, kept)
    return json.loads(out.read_text("utf-8"))


def _models_for_checker() -> Path | None:
    """The grader's trained models, for its checkers to read; None if the grader cannot keep any."""
    folder = trained_dir().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
