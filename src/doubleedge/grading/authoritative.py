"""The authoritative score: the learner's extracted code, judged from outside it.

Code in the learner's kernel can rewrite or blank later test cells, so scores that
matter are never taken from the kernel. The grader extracts the learner's solution
cells and starts two fresh processes, each in its own sandbox (see sandbox.py):

* the **runner** (runner.py) runs the lab's setup cell and the learner's cells, then
  answers questions about them: values, calls, the learner's guards;
* the **checker** (this module's ``main``) holds everything that decides the score:
  the model, the learner's secret, the held-out attacks, the baseline scan and the
  checks. It builds the hardened bot itself, from the learner's system prompt and
  with the learner's guards called over the pipe, then scans it with garak, the
  held-out attacks and the benign set.

So learner code never runs in the process that computes or writes the result, and
never sees the held-out set as a file. :func:`run` starts the pair and, when a cell
hangs or kills the runner, starts it again without that cell (nothing else is lost).

    python -m doubleedge.grading.authoritative --lab 01 --learner ID \
        --cells cells.json --baseline baseline.report.jsonl --out result.json

(with ``--cells``, unsandboxed, for debugging). The result maps each test cell's
grade_id to ``{"passed": bool, "reason": str}``, plus ``metrics`` and ``cell_errors``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from doubleedge.grading import lab01
from doubleedge.grading.labs import get_lab
from doubleedge.grading.runner import SETUP_SECONDS
from doubleedge.guards.base import Guard, Verdict
from doubleedge.target.bot import Defense

# Graded code may not lean on the course's reference solutions.
FORBIDDEN = re.compile(r"doubleedge\s*\.\s*defenses|from\s+doubleedge\s+import\s+[^\n]*\bdefenses\b")
FORBIDDEN_REASON = "imports the course's reference solution (doubleedge.defenses)"
MAX_LINE = 4 * 2**20
SLACK_SECONDS = 10.0


class RunnerBroken(Exception):
    """The learner's process stopped answering, died, or broke the protocol."""


class RemoteError(Exception):
    """The learner's code raised (or returned something unusable) when asked."""


class RunnerClient:
    """The checker's end of the pipe to the runner. Thread-safe (garak sends requests in parallel)."""

    def __init__(self, read_fd: int, write_fd: int, call_seconds: float) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.call_seconds = call_seconds
        self.broken = ""
        self._buffer = b""
        self._lock = threading.Lock()
        self._next_id = 0

    def event(self, timeout: float) -> dict:
        """The runner's next unsolicited message (``cell`` or ``ready``)."""
        return self._read(timeout)

    def request(self, op: str, **fields) -> dict:  # noqa: ANN003
        with self._lock:
            if self.broken:
                raise RunnerBroken(self.broken)
            self._next_id += 1
            message = {"op": op, "id": self._next_id, **fields}
            try:
                os.write(self.write_fd, json.dumps(message).encode() + b"\n")
                deadline = time.monotonic() + self.call_seconds + SLACK_SECONDS
                while True:
                    reply = self._read(deadline - time.monotonic())
                    if reply.get("id") == self._next_id:
                        break
            except (OSError, RunnerBroken) as exc:
                self.broken = self.broken or f"your code stopped answering ({op}): {exc}"
                raise RunnerBroken(self.broken) from None
        if not reply.get("ok"):
            raise RemoteError(str(reply.get("error", "failed"))[:200])
        return reply

    def value(self, name: str) -> object:
        try:
            return self.request("value", name=name)["value"]
        except RemoteError:
            raise NameError(f"{name} is not defined") from None

    def function(self, name: str) -> Callable:
        def call(*args: object) -> object:
            try:
                return self.request("call", name=name, args=list(args))["value"]
            except RemoteError as exc:
                raise RemoteError(f"{name} {exc}") from None

        return call

    def _read(self, timeout: float) -> dict:
        while b"\n" not in self._buffer:
            if timeout <= 0 or not select.select([self.read_fd], [], [], timeout)[0]:
                raise RunnerBroken("no answer in time")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise RunnerBroken("the process ended")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE:
                raise RunnerBroken("an answer was too long")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            raise RunnerBroken("an answer was not JSON") from None
        if not isinstance(message, dict):
            raise RunnerBroken("an answer was not a JSON object")
        return message


class RemoteGuards(Guard):
    """All of one side's learner guards, run by the runner; the verdict comes back as data."""

    def __init__(self, client: RunnerClient, side: str) -> None:
        self.client, self.side, self.name = client, side, f"learner {side} guards"

    def scan(self, text: str) -> Verdict:
        reply = self.client.request("scan", side=self.side, text=text)
        if not reply.get("allowed"):
            return Verdict(False, text, 1.0, str(reply.get("reason", ""))[:200])
        if not isinstance(reply.get("text"), str):
            raise RemoteError("a guard returned no text")
        return Verdict(True, reply["text"])


def remote_defense(client: RunnerClient) -> Callable[[str], Defense]:
    """``build_defense`` for lab01.hardened_bot: the learner's prompt, the learner's guards (remote)."""

    def build(secret: str) -> Defense:
        try:
            info = client.request("defense", secret=secret)
        except RemoteError as exc:
            raise ValueError(f"build_defense {exc}") from None
        if not info.get("is_defense") or not isinstance(info.get("system_prompt"), str):
            raise ValueError("build_defense must return a Defense")
        return Defense(
            name="learner",
            system_prompt=info["system_prompt"],
            input_guards=[RemoteGuards(client, "input")] if info.get("input_guards") else [],
            output_guards=[RemoteGuards(client, "output")] if info.get("output_guards") else [],
        )

    return build


class RemoteNamespace:
    """The learner's names as a grader reads them: ``ns["NAME"]`` is plain data, or a callable
    that runs in the runner; ``ns["build_defense"]`` builds the bot on the checker's side."""

    def __init__(self, client: RunnerClient) -> None:
        self.client = client

    def __getitem__(self, name: str) -> object:
        if name == "build_defense":
            return remote_defense(self.client)
        value = self.client.value(name)
        if isinstance(value, dict) and "__type__" in value:
            return self.client.function(name)  # not data: call it over the pipe (errors say why)
        return value


def grade_lab01(client: RunnerClient, errors: dict[str, str], learner: str, baseline_path: Path,
                heldout_path: Path) -> dict:  # fmt: skip
    from doubleedge.evaluate import load_attacks
    from doubleedge.scan import read_report

    baseline = read_report(baseline_path)
    results: dict[str, lab01.Check] = {}
    metrics: dict = {}

    def attempt(test_id: str, needs: str, check: Callable[[], lab01.Check]) -> None:
        if needs in errors:
            results[test_id] = lab01.Check(False, f"cell '{needs}': {errors[needs]}")
            return
        try:
            results[test_id] = check()
        except (RunnerBroken, RemoteError) as exc:
            results[test_id] = lab01.Check(False, str(exc))
        except Exception as exc:  # noqa: BLE001 (a learner value may break a check)
            results[test_id] = lab01.Check(False, f"{type(exc).__name__}: {str(exc)[:200]}")

    ns = RemoteNamespace(client)
    attempt("test_injection", "injection", lambda: lab01.check_injection(ns["MY_INJECTION"], learner))
    attempt("test_extracted_code", "extracted_code",
            lambda: lab01.check_extracted_code(ns["EXTRACTED_CODE"], learner))  # fmt: skip
    attempt("test_scan_probe", "scan_answers", lambda: lab01.check_scan_probe(ns["MOST_SUCCESSFUL_PROBE"], baseline))
    attempt(
        "test_scan_reading",
        "scan_answers",
        lambda: lab01.check_scan_reading(ns["OVERALL_ASR"], ns["SCAN_READING"], baseline),
    )
    attempt("test_leaks_secret", "hardening",
            lambda: lab01.check_leaks_secret(client.function("leaks_secret"), learner))  # fmt: skip

    hardening = None

    def evaluate() -> lab01.Check:
        nonlocal hardening
        bot = lab01.hardened_bot(ns["build_defense"], learner)
        result = lab01.evaluate_hardening(bot, load_attacks(heldout_path))
        if client.broken:  # garak's requests failed quietly: the numbers mean nothing
            raise RunnerBroken(client.broken)
        hardening = result
        metrics.update(hardening.metrics())
        return hardening.asr_check()

    attempt("test_hardening_asr", "hardening", evaluate)
    if hardening is None:
        results["test_hardening_benign"] = lab01.Check(False, results["test_hardening_asr"].reason)
    else:
        results["test_hardening_benign"] = hardening.benign_check()
    attacks = {}
    if hardening is not None:
        garak: dict[str, float] = {}
        for r in hardening.garak.results:
            garak[r.probe] = max(garak.get(r.probe, 0.0), round(r.attack_success_rate, 4))
        attacks = {"heldout": sorted(hardening.heldout.failures), "garak": garak}
    return {
        "tests": {k: {"passed": v.passed, "reason": v.reason} for k, v in results.items()},
        "metrics": metrics,
        "attacks": attacks,
    }


# A lab's grader: (client, cell errors, learner, baseline report, held-out set) -> result dict.
# Read the learner's names through RemoteNamespace(client); never exec learner code here.
GRADERS = {"01": grade_lab01}


def check(client: RunnerClient, lab: str, learner: str, baseline: Path, heldout: Path, skipped: dict[str, str],
          cell_seconds: float) -> dict:  # fmt: skip
    """Follow the runner through its cells, then grade. A cell that never ends is reported, not graded."""
    current = None
    while True:
        wait = max(cell_seconds, SETUP_SECONDS) if current in (None, "setup") else cell_seconds
        try:
            message = client.event(wait + SLACK_SECONDS)
        except RunnerBroken as exc:
            why = (
                f"the cell did not finish within {cell_seconds:g} s"
                if "in time" in str(exc)
                else "the cell ended the grading process (killed: a limit on memory, CPU time or processes, or by itself)"
            )
            return {"incomplete": current or "setup", "why": why}
        if message.get("event") == "cell":
            current = str(message.get("id"))
        elif message.get("event") == "ready":
            break
    errors = {str(k): str(v)[:300] for k, v in (message.get("errors") or {}).items()}
    errors.update(skipped)  # the grader's word, not the runner's
    if "setup" in errors:
        raise RuntimeError(f"the lab's setup cell failed in the grading sandbox: {errors['setup']}")
    result = GRADERS[lab](client, errors, learner, baseline, heldout)
    result["cell_errors"] = errors
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doubleedge.grading.authoritative")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--learner", required=True)
    parser.add_argument("--baseline", required=True, type=Path)
    parser.add_argument("--heldout", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runner-fds", help="READ,WRITE: the pipe to a runner started by the grader")
    parser.add_argument("--cells", type=Path, help="start the runner here on these cells (unsandboxed; debugging)")
    parser.add_argument("--skipped", type=Path, help="JSON {grade_id: reason} of cells the grader did not run")
    parser.add_argument("--cell-seconds", type=float, default=60)
    parser.add_argument("--call-seconds", type=float, default=30)
    args = parser.parse_args(argv)
    lab = get_lab(args.lab)
    skipped = json.loads(args.skipped.read_text("utf-8")) if args.skipped else {}
    runner = None
    if args.runner_fds:
        read_fd, write_fd = (int(x) for x in args.runner_fds.split(","))
    elif args.cells:
        runner = subprocess.Popen(
            [sys.executable, "-m", "doubleedge.grading.runner", str(args.cells)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(os.environ, DOUBLEEDGE_LEARNER=args.learner),
        )
        read_fd, write_fd = runner.stdout.fileno(), runner.stdin.fileno()
    else:
        parser.error("give --runner-fds or --cells")
    client = RunnerClient(read_fd, write_fd, args.call_seconds)
    try:
        heldout = args.heldout or lab.heldout_attacks
        result = check(client, lab.number, args.learner, args.baseline, heldout, skipped, args.cell_seconds)
    finally:
        if runner is not None:
            runner.kill()
    args.out.write_text(json.dumps(result, indent=1), "utf-8")
    return 0


# The grader's side: start the runner and the checker, each in its own sandbox -------------


def run(
    lab: str,
    learner: str,
    setup: str,
    cells: dict[str, str],
    baseline: Path,
    heldout: Path,
    scratch: Path,
    sandbox,  # noqa: ANN001 (sandbox.Sandbox; imported lazily to keep this module light)
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


def _run_pair(lab, learner, setup, cells, skipped, baseline, heldout, scratch, sandbox) -> dict:  # noqa: ANN001
    from doubleedge.grading.sandbox import kill_group, python

    limits = sandbox.limits
    attempt = len(skipped)
    runner_dir, checker_dir = Path(scratch) / f"runner-{attempt}", Path(scratch) / f"checker-{attempt}"
    for folder in (runner_dir, checker_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    spec = {"setup": setup, "cells": cells, "skip": sorted(skipped), "cell_seconds": limits.cell_seconds,
            "call_seconds": limits.call_seconds}  # fmt: skip
    (runner_dir / "cells.json").write_text(json.dumps(spec), "utf-8")
    shutil.copy(baseline, checker_dir / "baseline.report.jsonl")
    shutil.copy(heldout, checker_dir / "heldout.jsonl")
    (checker_dir / "skipped.json").write_text(json.dumps(skipped), "utf-8")
    to_runner_r, to_runner_w = os.pipe()
    from_runner_r, from_runner_w = os.pipe()
    runner_log = open(runner_dir / "stderr.log", "wb")  # noqa: SIM115
    try:
        runner = sandbox.popen(
            [python(), "-m", "doubleedge.grading.runner", str(runner_dir / "cells.json")],
            runner_dir,
            env={"DOUBLEEDGE_LEARNER": learner},
            stdin=to_runner_r,
            stdout=from_runner_w,
            stderr=runner_log,
        )
    finally:
        os.close(to_runner_r)
        os.close(from_runner_w)
        runner_log.close()
    out = checker_dir / "result.json"
    command = [
        python(), "-m", "doubleedge.grading.authoritative",
        "--lab", lab, "--learner", learner,
        "--baseline", str(checker_dir / "baseline.report.jsonl"),
        "--heldout", str(checker_dir / "heldout.jsonl"),
        "--skipped", str(checker_dir / "skipped.json"),
        "--out", str(out),
        "--runner-fds", f"{from_runner_r},{to_runner_w}",
        "--cell-seconds", str(limits.cell_seconds),
        "--call-seconds", str(limits.call_seconds),
    ]  # fmt: skip
    try:
        done = sandbox.run(command, checker_dir, env={"DOUBLEEDGE_LEARNER": learner},
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
    return json.loads(out.read_text("utf-8"))


if __name__ == "__main__":
    sys.exit(main())
