"""Lab 01's judge (prompt injection): see grading/lab01.py for the checks and thresholds."""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab01
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> Path:
    from doubleedge.models import ReferenceModel
    from doubleedge.scan import scan_bot, scan_for_lab
    from doubleedge.target import SupportBot, derive_secret

    bot = SupportBot(ReferenceModel(), secret=derive_secret("baseline"))
    return scan_bot(bot, scan_for_lab("01"), workdir=workdir).report_path


def judge(j: Judging) -> None:
    from doubleedge.evaluate import load_attacks, load_ordinary
    from doubleedge.scan import read_report

    ns, learner = j.ns, j.learner
    scan = read_report(j.baseline)
    j.attempt("test_injection", "injection", lambda: lab01.check_injection(ns["MY_INJECTION"], learner))

    def extracted() -> lab01.Check:
        if "injection" in j.errors:  # else "MY_INJECTION is not defined" would point at the wrong cell
            return lab01.Check(False, "extract_code reads the replies to MY_INJECTION: fix cell 'injection' first")
        return lab01.check_extracted_code(ns["extract_code"], ns["MY_INJECTION"], learner)

    j.attempt("test_extracted_code", "extracted_code", extracted)
    j.attempt("test_scan_probe", "scan_answers", lambda: lab01.check_scan_probe(ns["MOST_SUCCESSFUL_PROBE"], scan))
    j.attempt("test_scan_reading", "scan_answers",
              lambda: lab01.check_overall_asr(ns["OVERALL_ASR"], scan))  # fmt: skip
    j.attempt("test_leaks_secret", "hardening",
              lambda: lab01.check_leaks_secret(ns["leaks_secret"], learner))  # fmt: skip

    detection = lab01.load_detection_cases(j.heldout)
    j.attempt("test_detector", "detector", lambda: lab01.check_detector(ns["looks_like_injection"], detection))

    def uses_detector() -> lab01.Check:
        if "detector" in j.errors:
            return lab01.Check(False, "build_defense must use looks_like_injection: fix cell 'detector' first")
        bot = lab01.hardened_bot(ns["build_defense"], learner)
        return j.measure(bot, lambda b: lab01.check_defense_uses_detector(ns["looks_like_injection"], b, detection))

    j.attempt("test_detector_in_defense", "hardening", uses_detector)

    def measure() -> lab01.Hardening:
        bot = lab01.hardened_bot(ns["build_defense"], learner)
        return j.measure(bot, lambda b: lab01.evaluate_hardening(b, load_attacks(j.heldout), load_ordinary(j.ordinary)))

    result = j.evaluate(("test_hardening_asr", "test_hardening_benign"), "hardening", measure)
    if result is not None:
        j.attacks.update({"heldout": sorted(result.heldout.failures), "garak": result.garak.probe_rates()})
