"""Running garak against the bot, reading its reports and comparing runs."""

from doubleedge.scan.compare import Change, compare, plot_comparison
from doubleedge.scan.report import ProbeResult, ScanError, ScanReport, hits_in, read_report
from doubleedge.scan.runner import run_garak, scan_bot, scan_url
from doubleedge.scan.specs import BASELINE, ScanSpec, scan_for_lab

__all__ = [
    "BASELINE",
    "Change",
    "ProbeResult",
    "ScanError",
    "ScanReport",
    "ScanSpec",
    "compare",
    "hits_in",
    "plot_comparison",
    "read_report",
    "run_garak",
    "scan_bot",
    "scan_for_lab",
    "scan_url",
]
