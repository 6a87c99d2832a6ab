"""The checker's side of the authoritative run: everything that decides a learner's score.

    python -m doubleedge.grading.checker --lab 01 --learner ID \
        --cells cells.json --baseline baseline.report.jsonl --out result.json

(with ``--cells``, it starts the runner itself, unsandboxed, for debugging; the host side,
authoritative.py, passes ``--runner-fds`` to a runner it started in a sandbox). It holds the
model, the course key, the held-out cases, the baseline and the lab's judge (judges/), and talks
to the learner's process only in the protocol (protocol.py) through its end of the pipe
(remote.py). The result maps each test cell's grade_id to ``{"passed": bool, "reason": str}``,
plus ``metrics``, ``attacks`` and ``cell_errors``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from doubleedge.grading.judges import Judging, judge_for
from doubleedge.grading.protocol import SETUP_SECONDS, ProtocolError, event_fields
from doubleedge.grading.remote import SLACK_SECONDS, RunnerBroken, RunnerClient
from doubleedge.labs import get_lab
from doubleedge.target.secrets import COURSE_KEY_ENV, learner_environment


def check(client: RunnerClient, lab: str, learner: str, baseline: Path | None, heldout: Path, shared: Path,
          skipped: dict[str, str], cell_seconds: float, sources: dict[str, str] | None = None) -> dict:  # fmt: skip
    """Follow the runner through its cells, then grade. A cell that never ends is reported, not graded."""
    errors = follow_cells(client, cell_seconds)
    if "incomplete" in errors:
        return errors
    errors.update(skipped)  # the grader's word, not the runner's
    if "setup" in errors:
        raise RuntimeError(f"the lab's setup cell failed in the grading sandbox: {errors['setup']}")
    judging = Judging(client, errors, learner, baseline, heldout, shared, sources or {})
    judge_for(lab).judge(judging)
    return {**judging.result(), "cell_errors": errors}


def follow_cells(client: RunnerClient, cell_seconds: float) -> dict[str, str]:
    """The runner's cell errors once it is ready, or ``{"incomplete": cell, "why": ...}`` for the
    cell that hung, ended the process or broke the protocol (the host runs the rest without it)."""
    current = None
    while True:
        wait = max(cell_seconds, SETUP_SECONDS) if current in (None, "setup") else cell_seconds
        try:
            kind, message = event_fields(client.event(wait + SLACK_SECONDS))
        except RunnerBroken as exc:
            return {"incomplete": current or "setup", "why": incomplete_reason(str(exc), cell_seconds)}
        except ProtocolError as exc:
            return {"incomplete": current or "setup", "why": f"the cell broke the grading protocol: {exc}"}
        if kind == "ready":
            return {str(k): str(v)[:300] for k, v in message["errors"].items()}
        current = message["id"]


def incomplete_reason(broken: str, cell_seconds: float) -> str:
    if "in time" in broken:
        return f"the cell did not finish within {cell_seconds:g} s"
    return "the cell ended the grading process (killed: a limit on memory, CPU time or processes, or by itself)"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m doubleedge.grading.checker")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--learner", required=True)
    parser.add_argument("--baseline", type=Path, help="the lab's baseline: a scan report, Lab 07's trained model "
                        "or Lab 06's graded GGUF copies (a folder)")  # fmt: skip
    parser.add_argument("--heldout", type=Path)
    parser.add_argument("--shared", type=Path, help="a folder the runner can read and write (default: a temp one)")
    parser.add_argument("--out", required=True, type=Path)
    pipe = parser.add_mutually_exclusive_group(required=True)
    pipe.add_argument("--runner-fds", help="READ,WRITE: the pipe to a runner started by the grader")
    pipe.add_argument("--cells", type=Path, help="start the runner here on these cells (unsandboxed; debugging)")
    parser.add_argument("--skipped", type=Path, help="JSON {grade_id: reason} of cells the grader did not run")
    parser.add_argument("--sources", type=Path, help="JSON {grade_id: source} of the learner's cells, read as text")
    parser.add_argument("--cell-seconds", type=float, default=60)
    parser.add_argument("--call-seconds", type=float, default=30)
    return parser.parse_args(argv)


def runner_pipe(args: argparse.Namespace) -> tuple[int, int, subprocess.Popen | None]:
    """(read fd, write fd, the runner if this process started it): the grader's pipe, or a runner
    started here on ``--cells`` (unsandboxed, for debugging)."""
    if args.runner_fds:
        read_fd, write_fd = (int(x) for x in args.runner_fds.split(","))
        return read_fd, write_fd, None
    runner = subprocess.Popen(
        [sys.executable, "-m", "doubleedge.grading.runner", str(args.cells)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != COURSE_KEY_ENV} | learner_environment(args.learner),
    )
    return runner.stdout.fileno(), runner.stdin.fileno(), runner


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    lab = get_lab(args.lab)
    skipped = json.loads(args.skipped.read_text("utf-8")) if args.skipped else {}
    sources = json.loads(args.sources.read_text("utf-8")) if args.sources else {}
    read_fd, write_fd, runner = runner_pipe(args)
    client = RunnerClient(read_fd, write_fd, args.call_seconds)
    shared = args.shared or Path(tempfile.mkdtemp(prefix="doubleedge-shared-"))
    try:
        heldout = args.heldout or lab.heldout_attacks
        result = check(client, lab.number, args.learner, args.baseline, heldout, shared, skipped, args.cell_seconds,
                       sources)  # fmt: skip
    finally:
        if runner is not None:
            runner.kill()
        if not args.shared:
            shutil.rmtree(shared, ignore_errors=True)
    args.out.write_text(json.dumps(result, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
