"""What every lab's checks share (pure: no lab kit imports): the result of one check, the text
of the cell that defined a learner's function (for the notebook's previews of checks that read
code), and the checks of a learner's answers about a garak scan, which several labs ask for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    passed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed


def cell_source(function: object) -> str:
    """The text of the notebook cell that defined ``function`` (IPython keeps each cell's text for
    tracebacks), or its own source elsewhere; "" when there is none to read. The notebook's preview
    of a check that reads the code: the grader reads the submitted cells instead, whose text
    nothing the learner's code does at run time can change."""
    import inspect
    import linecache

    code = getattr(function, "__code__", None)
    if code is None:
        return ""
    lines = linecache.getlines(code.co_filename)
    if lines:
        return "".join(lines)
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def strongest_probes(baseline) -> set[str]:  # a scan.ScanReport
    top = max(r.attack_success_rate for r in baseline.results)
    return {r.probe for r in baseline.results if r.attack_success_rate == top}


def check_scan_probe(probe: object, baseline) -> Check:
    """``MOST_SUCCESSFUL_PROBE`` is one of the probes with the highest attack success rate."""
    if not isinstance(probe, str):
        return Check(False, "MOST_SUCCESSFUL_PROBE must be a probe's name (a string), such as 'dan.STAN'")
    if probe in strongest_probes(baseline):
        return Check(True)
    return Check(False, "MOST_SUCCESSFUL_PROBE is not a probe with the highest attack success rate: "
                 "copy the name of the probe with the highest rate in your scan's table")  # fmt: skip


def check_overall_asr(overall: object, baseline) -> Check:
    """``OVERALL_ASR`` matches the scan, as a fraction. (The written reading of the scan is graded by a
    person: see course/instructors/written-answers.md.)"""
    if (not isinstance(overall, (int, float)) or isinstance(overall, bool)
            or abs(overall - baseline.overall_attack_success_rate) > 0.02):  # fmt: skip
        return Check(False, "OVERALL_ASR does not match the scan's overall attack success rate (a fraction, e.g. 0.5)")
    return Check(True)
