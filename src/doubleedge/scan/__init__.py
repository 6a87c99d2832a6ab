"""Running garak against the bot, reading its reports and comparing runs.

The names below load their module on first use (PEP 562): every garak process starts through
``doubleedge.scan.launch``, which must not pay for the bot, the models and the report reader.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Change": "compare",
    "compare": "compare",
    "plot_comparison": "compare",
    "ProbeResult": "report",
    "ScanError": "report",
    "ScanReport": "report",
    "hits_in": "report",
    "read_report": "report",
    "run_garak": "runner",
    "scan_bot": "runner",
    "scan_url": "runner",
    "BASELINE": "specs",
    "ScanSpec": "specs",
    "scan_for_lab": "specs",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
