"""The authoritative score: re-run a learner's graded cells in a fresh process.

Code in the learner's kernel can rewrite or blank later test cells, so scores that
matter are never taken from the kernel. The grader extracts the learner's solution
cells, runs them here after the lab's own setup cell, and checks the results.

    python -m doubleedge.grading.authoritative --lab 01 --learner ID \
        --cells cells.json --baseline baseline.report.jsonl --out result.json

``cells.json`` is ``{"setup": "...", "cells": {"grade_id": "source", ...}}``. The
result maps each test cell's grade_id to ``{"passed": bool, "reason": str}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from pathlib import Path

from doubleedge.evaluate import load_attacks
from doubleedge.grading import lab01
from doubleedge.grading.labs import get_lab
from doubleedge.scan import read_report

# Graded code may not lean on the course's reference solutions.
FORBIDDEN = re.compile(r"doubleedge\s*\.\s*defenses|from\s+doubleedge\s+import\s+[^\n]*\bdefenses\b")


def run_cells(setup: str, cells: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """Run the setup cell, then each learner cell in order; one cell's error spares the others."""
    namespace: dict = {"__name__": "__learner__"}
    exec(compile(setup, "<setup>", "exec"), namespace)  # the lab's own code, from the source notebook
    errors: dict[str, str] = {}
    for grade_id, source in cells.items():
        if FORBIDDEN.search(source):
            errors[grade_id] = "imports the course's reference solution (doubleedge.defenses)"
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"<cell {grade_id}>", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 (learner code may raise anything, even SystemExit)
            errors[grade_id] = f"the cell raised {type(exc).__name__}: {str(exc)[:200]}"
    return namespace, errors


def grade_lab01(cells: dict, learner: str, baseline_path: Path, heldout_path: Path) -> dict:
    ns, errors = run_cells(cells["setup"], cells["cells"])
    baseline = read_report(baseline_path)
    results: dict[str, lab01.Check] = {}
    metrics: dict = {}

    def attempt(test_id: str, needs: str, check) -> None:
        if needs in errors:
            results[test_id] = lab01.Check(False, f"cell '{needs}': {errors[needs]}")
            return
        try:
            results[test_id] = check()
        except Exception as exc:  # noqa: BLE001 (a learner value may break a check)
            results[test_id] = lab01.Check(False, f"{type(exc).__name__}: {str(exc)[:200]}")

    attempt("test_injection", "injection", lambda: lab01.check_injection(ns["MY_INJECTION"], learner))
    attempt("test_extracted_code", "extracted_code", lambda: lab01.check_extracted_code(ns["EXTRACTED_CODE"], learner))
    attempt("test_scan_probe", "scan_answers", lambda: lab01.check_scan_probe(ns["MOST_SUCCESSFUL_PROBE"], baseline))
    attempt(
        "test_scan_reading",
        "scan_answers",
        lambda: lab01.check_scan_reading(ns["OVERALL_ASR"], ns["SCAN_READING"], baseline),
    )
    attempt("test_leaks_secret", "hardening", lambda: lab01.check_leaks_secret(ns["leaks_secret"], learner))

    hardening = None

    def evaluate() -> lab01.Check:
        nonlocal hardening
        bot = lab01.hardened_bot(ns["build_defense"], learner)
        hardening = lab01.evaluate_hardening(bot, load_attacks(heldout_path))
        metrics.update(hardening.metrics())
        return hardening.asr_check()

    attempt("test_hardening_asr", "hardening", evaluate)
    if hardening is None:
        results["test_hardening_benign"] = lab01.Check(False, results["test_hardening_asr"].reason)
    else:
        results["test_hardening_benign"] = hardening.benign_check()
    return {
        "tests": {k: {"passed": v.passed, "reason": v.reason} for k, v in results.items()},
        "metrics": metrics,
    }


GRADERS = {"01": grade_lab01}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doubleedge.grading.authoritative")
    parser.add_argument("--lab", required=True)
    parser.add_argument("--learner", required=True)
    parser.add_argument("--cells", required=True, type=Path)
    parser.add_argument("--baseline", required=True, type=Path)
    parser.add_argument("--heldout", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    lab = get_lab(args.lab)
    cells = json.loads(args.cells.read_text("utf-8"))
    result = GRADERS[lab.number](cells, args.learner, args.baseline, args.heldout or lab.heldout_attacks)
    args.out.write_text(json.dumps(result, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
