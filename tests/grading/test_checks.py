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
