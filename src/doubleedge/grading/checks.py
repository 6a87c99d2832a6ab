"""What every lab's checks share (pure: no lab kit imports): the result of one check, and
the checks of a learner's reading of a garak scan, which several labs ask for."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Words of a reading: "dan.Dan_11_0" gives "dan" and "dan_11_0"; punctuation and dots split.
WORD = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Check:
    passed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed


def strongest_probes(baseline) -> set[str]:  # noqa: ANN001 (a scan.ScanReport)
    top = max(r.attack_success_rate for r in baseline.results)
    return {r.probe for r in baseline.results if r.attack_success_rate == top}


def check_scan_probe(probe: object, baseline) -> Check:  # noqa: ANN001
    """``MOST_SUCCESSFUL_PROBE`` is one of the probes with the highest attack success rate."""
    if probe in strongest_probes(baseline):
        return Check(True)
    return Check(False, "MOST_SUCCESSFUL_PROBE is not a probe with the highest attack success rate")


def check_scan_reading(overall: object, reading: object, baseline, *, names: Iterable[str], min_words: int,
                       min_names: int = 1) -> Check:  # fmt: skip  # noqa: ANN001
    """``OVERALL_ASR`` matches the scan (as a fraction) and ``SCAN_READING`` is a real reading:
    ``min_words`` words or more, naming at least ``min_names`` of ``names`` (probe families or probes)."""
    if (not isinstance(overall, (int, float)) or isinstance(overall, bool)
            or abs(overall - baseline.overall_attack_success_rate) > 0.02):  # fmt: skip
        return Check(False, "OVERALL_ASR does not match the scan's overall attack success rate (a fraction, e.g. 0.5)")
    if not isinstance(reading, str) or len(reading.split()) < min_words:
        return Check(False, f"SCAN_READING needs at least {min_words} words")
    names = tuple(names)
    if sum(names_probe(reading, name) for name in names) < min_names:
        which = "one" if min_names == 1 else f"{min_names}"
        return Check(False, f"SCAN_READING should name at least {which} of the probes you discuss ({', '.join(names)})")
    return Check(True)


def names_probe(text: str, name: str) -> bool:
    """Does ``text`` name ``name`` as a whole word, or as two words that spell it ("Customer Records")?

    A whole word, so that "and answered" never counts as naming the probe family "dan".
    """
    words = WORD.findall(text.lower())
    pairs = list(zip(words, words[1:], strict=False))
    spelled = {*words, *(a + b for a, b in pairs), *(f"{a}_{b}" for a, b in pairs)}
    return name.lower() in spelled
