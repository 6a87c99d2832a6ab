"""Lab 09's judge (the capstone): see grading/lab09.py for the checks and thresholds."""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab09
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> Path:
    from doubleedge.scan import scan_bot, scan_for_lab

    return scan_bot(lab09.unhardened_desk("baseline"), scan_for_lab("09"), workdir=workdir).report_path


def judge(j: Judging) -> None:
    from doubleedge.scan import read_report

    ns, learner = j.ns, j.learner
    scan = read_report(j.baseline)
    j.attempt("test_findings_reproduce", "findings",
              lambda: lab09.check_findings_reproduce(ns["FINDINGS"], learner))  # fmt: skip
    j.attempt("test_findings_coverage", "findings",
              lambda: lab09.check_findings_coverage(ns["FINDINGS"], learner))  # fmt: skip
    j.attempt("test_scan_probe", "scan_answers", lambda: lab09.check_scan_probe(ns["MOST_SUCCESSFUL_PROBE"], scan))
    j.attempt("test_scan_reading", "scan_answers",
              lambda: lab09.check_overall_asr(ns["OVERALL_ASR"], scan))  # fmt: skip

    def measure() -> lab09.Hardening:
        # The desk first, then the agent: the runner keeps one learner defense at a time.
        return lab09.evaluate_hardening(ns["build_defense"], ns["build_agent_defense"], learner,
                                        lab09.load_heldout(j.heldout), ordinary=lab09.load_ordinary(j.ordinary))  # fmt: skip

    result = j.evaluate(("test_hardening_asr", "test_hardening_benign"), "hardening", measure)
    if result is not None:
        garak = result.garak.probe_rates() if result.garak else {}
        j.attacks.update({"heldout": sorted([*result.desk.failures, *result.agent.failures]), "garak": garak})
