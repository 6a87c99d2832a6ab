"""``doubleedge scan`` on the labs whose target is not the support bot: Lab 04's web chat
and Lab 05's agent, with real garak runs through the command as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from doubleedge.scan import scan_for_lab

pytestmark = pytest.mark.integration


def scan_json(lab: str, defense: str, cwd) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "doubleedge.cli", "scan", "--lab", lab, "--defense", defense, "--json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("lab, hardening", [("04", "lab04"), ("05", "lab05"), ("09", "lab09")])
def test_scan_of_the_lab_target_drops_with_its_defense(lab, hardening, tmp_path):
    before, after = scan_json(lab, "none", tmp_path), scan_json(lab, hardening, tmp_path)
    for result, defense in ((before, "none"), (after, hardening)):
        assert set(result) == {"lab", "defense", "results", "overall_attack_success_rate"}
        assert result["lab"] == lab and result["defense"] == defense
        assert {r["probe"] for r in result["results"]} == set(scan_for_lab(lab).probes)
        assert {"probe", "detector", "attempts", "hits", "attack_success_rate"} <= set(result["results"][0])
    assert before["overall_attack_success_rate"] > after["overall_attack_success_rate"]
