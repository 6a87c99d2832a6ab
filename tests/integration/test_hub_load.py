"""The hub's load driver (bench/hub_load.py) with two learners: it really drives the hub end to
end, its figures are well formed, and every learner's submission reached the instructor.
Only the shape is checked here, never the speed (the machine is shared)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest


def _proxy_missing() -> str:
    from doubleedge.grading import hub

    try:
        hub.proxy_command()
    except SystemExit as exc:
        return str(exc)
    return ""


REQUIRED = bool(os.environ.get("DOUBLEEDGE_REQUIRE_SANDBOX"))  # CI: fail, never skip
HUB_MISSING = not os.path.exists(os.path.join(os.path.dirname(sys.executable), "jupyterhub"))
HUB_NEEDS = [  # as in test_hub.py
    pytest.mark.skipif(HUB_MISSING and not REQUIRED, reason="jupyterhub is not installed"),
    pytest.mark.skipif(bool(_proxy_missing()) and not REQUIRED, reason=_proxy_missing() or "proxy"),
]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hub_load.py"
LEARNERS, CELLS = 2, 3


def _driver():
    spec = importlib.util.spec_from_file_location("hub_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.integration
@HUB_NEEDS[0]
@HUB_NEEDS[1]
def test_two_learners_through_the_hub(tmp_path):
    out = tmp_path / "hub_load.json"
    assert _driver().main(["--learners", str(LEARNERS), "--cells", str(CELLS), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())

    assert figures["submitted"] == figures["expected"] == ["load01", "load02"], figures
    rows = figures["per_learner"]
    assert sorted(r["learner"] for r in rows) == figures["expected"]
    for row in rows:
        assert _positive(row["spawn_seconds"]) and len(row["cell_seconds"]) == CELLS, row
        assert all(_positive(s) for s in row["cell_seconds"]), row
        # a JupyterLab server and its kernel hold tens of MB at least, and less than the limit allows
        assert 20 < row["peak_rss_mb"] < 8192, row
    cells = figures["cell_seconds"]
    assert cells["n"] == LEARNERS * CELLS and cells["p50"] <= cells["p95"] <= cells["max"], cells
    assert cells["max"] == max(s for r in rows for s in r["cell_seconds"])
    spawn = figures["spawn_seconds"]
    assert spawn["n"] == LEARNERS and spawn["p50"] <= spawn["p95"] == spawn["max"], spawn
    assert figures["peak_rss_mb_per_server"]["max"] == max(r["peak_rss_mb"] for r in rows)


def test_percentiles_by_nearest_rank():
    driver = _driver()
    values = [float(x) for x in range(1, 21)]  # 1..20
    assert driver.percentile(values, 50) == 10.0 and driver.percentile(values, 95) == 19.0
    assert driver.percentile([3.0], 95) == 3.0
