"""Lab 02's judge (indirect prompt injection): see grading/lab02.py for the checks and thresholds."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from doubleedge.grading import lab02
from doubleedge.grading.judges import Judging
from doubleedge.grading.remote import RemoteError


def baseline(workdir: Path) -> Path:
    """The unhardened bot's scan. Its rates do not depend on the learner: the detectors look
    for trigger strings and links, never the staff code, so one scan serves the class."""
    from doubleedge.scan import scan_bot, scan_for_lab

    return scan_bot(lab02.unhardened_bot("baseline"), scan_for_lab("02"), workdir=workdir).report_path


def judge(j: Judging) -> None:
    from doubleedge.scan import read_report

    ns, learner = j.ns, j.learner
    scan = read_report(j.baseline)
    j.attempt("test_planted_review", "planted_review",
              lambda: lab02.check_planted_review(ns["PLANTED_REVIEW"], learner))  # fmt: skip
    j.attempt("test_scan_probe", "scan_answers", lambda: lab02.check_scan_probe(ns["MOST_SUCCESSFUL_PROBE"], scan))
    j.attempt("test_scan_reading", "scan_answers",
              lambda: lab02.check_overall_asr(ns["OVERALL_ASR"], scan))  # fmt: skip
    j.attempt("test_strip_instructions", "hardening",
              lambda: lab02.check_strip_instructions(ns["strip_instructions"]))  # fmt: skip

    documents = lab02.load_datamark_documents(j.heldout)

    # Read from the submitted cells' text: nothing the learner's code does at run time changes it.
    named = any(lab02.names_kit_datamark(source) for source in j.sources.values())

    @cache  # both datamark tests ask; the runner watches once
    def kit_used() -> bool:
        """Named in the text, or seen marking in the runner (a name built at run time)."""
        return named or seen_marking("kit_marks", "datamark") or seen_marking("kit_marks_in_defense", "build_defense")

    def seen_marking(helper: str, function: str) -> bool:
        try:
            return ns.apply(helper, function, list(documents)) is True
        except RemoteError:  # a missing or hanging function: the checks themselves say so
            return False

    j.attempt("test_datamark", "hardening", lambda: lab02.check_datamark(ns["datamark"], kit_used(), documents))

    def uses_datamark() -> lab02.Check:
        bot = lab02.hardened_bot(ns["build_defense"], learner)
        return lab02.check_defense_uses_datamark(ns["datamark"], bot, kit_used(), documents)

    j.attempt("test_datamark_in_defense", "hardening", uses_datamark)

    def measure() -> lab02.Hardening:
        bot = lab02.hardened_bot(ns["build_defense"], learner)
        attacks, ordinary = lab02.load_document_attacks(j.heldout), lab02.load_ordinary_requests(j.ordinary)
        return j.measure(bot, lambda b: lab02.evaluate_hardening(b, attacks, ordinary=ordinary))

    result = j.evaluate(("test_hardening_asr", "test_hardening_benign"), "hardening", measure)
    if result is not None:
        j.attacks.update({"heldout": sorted(result.heldout.failures), "garak": result.garak.probe_rates()})
