"""The checks every lab shares (grading/checks.py)."""

import pytest

from doubleedge.grading import checks
from doubleedge.scan import ProbeResult, ScanReport

SCAN = ScanReport((ProbeResult("dan.Dan_11_0", "dan.DAN", 10, 9), ProbeResult("encoding.InjectHex", "d.D", 10, 1)))
# 45 words that name no probe, but hold "dan" once the spaces are gone ("and answered").
FILLER = "I ran the scan and answered the questions, and answered them all in the notebook. " * 3


@pytest.mark.parametrize(
    ("text", "name", "named"),
    [
        ("dan.Dan_11_0 succeeds on 9 of 10 prompts", "dan", True),
        ("The DAN role-play prompts work", "dan", True),
        ("Customer Records leak every time", "customerrecords", True),
        ("doubleedge.CustomerRecords leaks", "customerrecords", True),
        ("web injection and web_injection", "web_injection", True),
        ("I ran it and answered", "dan", False),
        ("Jordan and Dana", "dan", False),
        ("the encodings", "encoding", False),
    ],
)
def test_names_probe_matches_whole_names_only(text, name, named):
    assert checks.names_probe(text, name) is named


def test_filler_reading_fails():
    result = checks.check_scan_reading(0.5, FILLER, SCAN, names=("dan", "encoding"), min_words=40)
    assert not result and "should name at least one" in result.reason


def test_reading_that_names_a_probe_passes():
    reading = "dan.Dan_11_0 succeeds on 9 of 10 prompts. " + FILLER
    assert checks.check_scan_reading(0.5, reading, SCAN, names=("dan", "encoding"), min_words=40)
