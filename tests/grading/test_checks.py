"""The checks every lab shares (grading/checks.py)."""

import pytest

from doubleedge.grading import checks
from doubleedge.scan import ProbeResult, ScanReport

SCAN = ScanReport((ProbeResult("dan.Dan_11_0", "dan.DAN", 10, 9), ProbeResult("encoding.InjectHex", "d.D", 10, 1)))


@pytest.mark.parametrize(
    ("overall", "passed"), [(0.5, True), (0.51, True), (0.6, False), ("50%", False), (True, False)]
)
def test_overall_asr_matches_the_scan(overall, passed):
    assert bool(checks.check_overall_asr(overall, SCAN)) is passed


def test_cell_source_reads_the_whole_cell_that_defined_a_function():
    """The notebook previews read the defining cell, as IPython keeps it: imports beside the function count."""
    import linecache

    cell = "from hmac import compare_digest as same\n\n\ndef check(typed, secret):\n    return same(typed, secret)\n"
    name = "<cell test-cell-source>"
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    namespace: dict = {}
    try:
        exec(compile(cell, name, "exec"), namespace)
        assert checks.cell_source(namespace["check"]) == cell
    finally:
        del linecache.cache[name]
    assert checks.cell_source(len) == ""  # a builtin: nothing to read
    assert checks.cell_source("not a function") == ""
