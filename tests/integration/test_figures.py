"""The course's baseline and defense-level figures come from real scans and have not drifted."""

import json
import re

import pytest

from doubleedge import figures
from doubleedge.paths import REPO_ROOT
from doubleedge.scan import BASELINE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fresh():
    return figures.measure_all()


def test_committed_figures_match_a_fresh_measurement(fresh):
    assert figures.drift(fresh=fresh) == []


def test_defense_in_depth_holds(fresh):
    levels = {lv["defense"]: lv for lv in fresh["levels"]}
    rates = [levels[name]["overall_attack_success_rate"] for name in figures.LEVEL_NAMES]
    assert rates == sorted(rates, reverse=True), "each level must cut the attack success rate"
    assert all(rate > 0 for rate in rates), "no level reaches zero: the lesson says so"
    assert levels["L3"]["benign_pass_rate"] == 1.0 and levels["L4"]["benign_pass_rate"] < 1.0


def test_course_page_states_the_scan_it_shows():
    page = (REPO_ROOT / "course" / "target" / "index.md").read_text()
    families = {p.split(".")[0] for p in BASELINE.probes}
    assert f"{len(BASELINE.probes)} probes from {len(families)} families" in page
    assert f"at most {BASELINE.prompt_cap} prompts per probe" in page
    assert f"seed {BASELINE.seed}" in page


def test_figures_json_records_the_spec():
    data = json.loads((figures.DEFAULT_OUT / "figures.json").read_text())
    assert data["spec"] == {"probes": len(BASELINE.probes), "prompt_cap": BASELINE.prompt_cap, "seed": BASELINE.seed}
    assert re.search(r"\| L4 \|", (figures.DEFAULT_OUT / "levels.md").read_text())
