"""Running garak against the bot, reading its reports and comparing runs.

The runner's names load ``doubleedge.scan.runner`` on first use (PEP 562): every garak process
starts through ``doubleedge.scan.launch``, which must not pay for the bot and the models.
"""

from __future__ import annotations

import importlib

from doubleedge.scan.compare import Change, compare, plot_comparison
from doubleedge.scan.report import ProbeResult, ScanError, ScanReport, hits_in, read_report, reused_scan
from doubleedge.scan.specs import BASELINE, ScanSpec, scan_for_lab

_FROM_RUNNER = ("run_garak", "scan_bot", "scan_url")

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
    "reused_scan",
    "run_garak",
    "scan_bot",
    "scan_for_lab",
    "scan_url",
]


def __getattr__(name: str) -> object:
    if name not in _FROM_RUNNER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.runner"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FROM_RUNNER})
