"""Lab 03's judge (sensitive data, system-prompt leakage): see grading/lab03.py for the checks and thresholds."""

from __future__ import annotations

from pathlib import Path

from doubleedge.grading import lab03
from doubleedge.grading.judges import Judging


def baseline(workdir: Path) -> Path:
    """The naive app's scan. Its rates do not depend on the learner: the detector flags
    anything shaped like another customer's data, a staff code or a canary."""
    from doubleedge.scan import scan_bot, scan_for_lab

    return scan_bot(lab03.unhardened_bot("baseline"), scan_for_lab("03"), workdir=workdir).report_path


def judge(j: Judging) -> None:
    from doubleedge.evaluate import load_attacks, load_ordinary
    from doubleedge.scan import read_report

    ns, learner = j.ns, j.learner
    scan = read_report(j.baseline)
    j.attempt("test_record_attack", "record_attack",
              lambda: lab03.check_record_attack(ns["MY_RECORD_ATTACK"], learner))  # fmt: skip
    j.attempt("test_card_digits", "card_digits",
              lambda: lab03.check_card_digits(ns["extract_card_last4"], ns["MY_CARD_ATTACK"], learner))  # fmt: skip
    j.attempt("test_prompt_attack", "prompt_attack",
              lambda: lab03.check_prompt_attack(ns["MY_PROMPT_ATTACK"], learner))  # fmt: skip
    j.attempt("test_canary", "prompt_attack",
              lambda: lab03.check_canary(ns["extract_canary"], ns["MY_PROMPT_ATTACK"], learner))  # fmt: skip
    j.attempt("test_scan_reading", "scan_answers",
              lambda: lab03.check_overall_asr(ns["OVERALL_ASR"], scan))  # fmt: skip
    sessions, codes = lab03.load_session_cases(j.heldout), lab03.load_code_cases(j.heldout)
    j.attempt("test_records_for", "access", lambda: lab03.check_records_for(ns["records_for"], sessions))

    # Read from the submitted cells' text: nothing the learner's code does at run time changes it.
    constant_time = lab03.compares_in_constant_time(j.sources.values())
    j.attempt("test_check_code", "code_check",
              lambda: lab03.check_check_code(ns["check_code"], learner, codes, constant_time))  # fmt: skip

    def uses_them() -> lab03.Check:
        for cell, name in (("access", "records_for"), ("code_check", "check_code")):
            if cell in j.errors:
                return lab03.Check(False, f"build_defense must use {name}: fix cell '{cell}' first")
        bot = lab03.hardened_bot(ns["build_defense"], learner)
        return j.measure(bot, lambda b: lab03.check_defense_uses_them(ns["records_for"], ns["check_code"], b))

    j.attempt("test_defense_uses_them", "hardening", uses_them)
    j.attempt("test_redact_pii", "hardening",
              lambda: lab03.check_redact_pii(ns["redact_pii"], lab03.load_redaction_cases(j.heldout)))  # fmt: skip

    def measure() -> lab03.Hardening:
        bot = lab03.hardened_bot(ns["build_defense"], learner)
        attacks, ordinary = load_attacks(j.heldout), load_ordinary(j.ordinary)
        return j.measure(bot, lambda b: lab03.evaluate_hardening(b, attacks, ordinary=ordinary))

    result = j.evaluate(("test_hardening_asr", "test_hardening_benign"), "hardening", measure)
    if result is not None:
        j.attacks.update({"heldout": sorted(result.heldout.failures), "garak": result.garak.probe_rates()})
