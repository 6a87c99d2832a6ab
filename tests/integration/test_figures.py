"""The course's measured records come from real runs and have not drifted.

Every set is measured afresh here (real garak scans, real training runs) and compared with
the committed record in ``course/measured/`` that the site build draws its charts from.
"""

import importlib

import pytest

from doubleedge import figures
from doubleedge.labs import get_lab
from doubleedge.paths import REPO_ROOT
from doubleedge.scan import BASELINE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("figures-cache")


@pytest.fixture(scope="module")
def fresh_levels(tmp_path_factory, cache):
    """Measured through ``obtain`` with no committed record: the path a build takes when a spec changed."""
    empty = tmp_path_factory.mktemp("no-records")
    return figures.obtain("levels", folder=empty, cache=cache, log=lambda _: None)


@pytest.fixture(scope="module")
def fresh_labs():
    return figures.measure_set("labs")


@pytest.fixture(scope="module")
def fresh_memorization():
    return figures.measure_set("memorization")


def test_committed_levels_match_a_fresh_measurement(fresh_levels):
    assert figures.drift_of("levels", fresh_levels) == []


def test_a_build_measures_once_then_reads_the_cache(fresh_levels, cache, tmp_path, monkeypatch):
    assert (cache / "figures" / f"levels-{figures.key('levels')}.json").is_file()

    def no_measuring(name):
        raise AssertionError(f"measured {name} again")

    monkeypatch.setattr(figures, "measure_set", no_measuring)
    assert figures.obtain("levels", folder=tmp_path, cache=cache) == fresh_levels
    assert figures.obtain("levels", cache=tmp_path)["levels"] == fresh_levels["levels"]  # the committed record


def test_defense_in_depth_holds(fresh_levels):
    levels = {lv["defense"]: lv for lv in fresh_levels["levels"]}
    rates = [levels[name]["overall_attack_success_rate"] for name in figures.LEVEL_NAMES]
    assert rates == sorted(rates, reverse=True), "each level must cut the attack success rate"
    assert all(rate > 0 for rate in rates), "no level reaches zero: the lesson says so"
    assert levels["L3"]["benign_pass_rate"] == 1.0 and levels["L4"]["benign_pass_rate"] < 1.0
    assert levels["L5"]["overall_attack_success_rate"] <= levels["L4"]["overall_attack_success_rate"]


def test_committed_lab_records_match_a_fresh_measurement(fresh_labs):
    assert figures.drift_of("labs", fresh_labs) == []


def test_every_reference_solution_cuts_attacks_and_keeps_ordinary_use(fresh_labs):
    for number, lab in fresh_labs["labs"].items():
        before, after = lab["unhardened"], lab["reference solution"]
        assert after["attack_success_rate"] < before["attack_success_rate"], number
        assert after["benign_rate"] >= 0.9, number


@pytest.fixture(scope="module")
def fresh_layers():
    return figures.measure_set("layers")


def test_committed_layer_records_match_a_fresh_measurement(fresh_layers):
    assert figures.drift_of("layers", fresh_layers) == []


def test_layers_are_measured_as_the_grader_measures(fresh_layers):
    """Each lab's layers run from its unhardened target to its packaged reference solution, which
    the lab's own measure (the "labs" set) scans with the same garak scan, with the same results;
    the full design passes the grade, the unhardened target fails it, and no layer over-blocks."""
    assert list(fresh_layers["labs"]) == ["02", "03"]
    for number, lab in fresh_layers["labs"].items():
        checks = importlib.import_module(get_lab(number).checks)
        layers = lab["layers"]
        assert list(layers)[0] == "none" and list(layers)[-1] == "reference", number
        labs = figures.load("labs")["labs"][number]
        assert layers["none"]["results"] == labs["unhardened"]["results"], number
        assert layers["reference"]["results"] == labs["reference solution"]["results"], number
        passing = [name for name, m in layers.items() if m["attack_success_rate"] < checks.ASR_THRESHOLD]
        assert "reference" in passing and "none" not in passing, number
        assert all(m["benign_pass_rate"] >= checks.BENIGN_THRESHOLD for m in layers.values()), number


def test_layer_drift_is_reported(fresh_layers):
    changed = {**fresh_layers, "labs": {**fresh_layers["labs"]}}
    lab = changed["labs"]["03"] = {**fresh_layers["labs"]["03"], "layers": dict(fresh_layers["labs"]["03"]["layers"])}
    lab["layers"]["authorization"] = {**lab["layers"]["authorization"], "heldout_asr": 0.5}
    assert any("lab 03 authorization heldout_asr changed" in p for p in figures.drift_of("layers", changed))


@pytest.fixture(scope="module")
def fresh_releases():
    return figures.measure_set("releases")


def test_committed_release_records_match_a_fresh_measurement(fresh_releases):
    assert figures.drift_of("releases", fresh_releases) == []


def test_the_gate_passes_the_clean_releases_and_fails_the_regressions(fresh_releases):
    verdicts = {r["name"]: r["violations"] for r in fresh_releases["releases"]}
    assert verdicts.pop(figures.APPROVED) is None
    passed = {name for name, violations in verdicts.items() if not violations}
    assert passed == {"v1.1-friendlier", "v1.1-short-prompt"}  # the others regress (the lesson says how)


def test_committed_memorization_record_matches_a_fresh_measurement(fresh_memorization):
    assert figures.drift_of("memorization", fresh_memorization) == []


def test_exposure_grows_with_repetition_and_cleaning_removes_it(fresh_memorization):
    runs = fresh_memorization["runs"]
    unhardened = {c["id"]: c["exposure_bits"] for c in runs["unhardened"]["canaries"]}
    assert unhardened["card-x64"] > unhardened["card-x4"] > unhardened["card-x1"]
    assert max(c["exposure_bits"] for c in runs["scrubbed + deduplicated"]["canaries"]) < 12
    assert runs["scrubbed + deduplicated"]["garak_canary_asr"] < runs["unhardened"]["garak_canary_asr"]
    dp = runs["DP-SGD, noise 1.0"]
    assert dp["epsilon"] is not None and dp["perplexity"] > 2 * runs["unhardened"]["perplexity"], "DP's price"


def test_drift_is_reported(fresh_levels):
    """The comparison can fail: a changed number is named."""
    changed = {**fresh_levels, "levels": [dict(lv) for lv in fresh_levels["levels"]]}
    changed["levels"][1]["overall_attack_success_rate"] += 0.01
    assert any("L1 overall_attack_success_rate" in p for p in figures.drift_of("levels", changed))


def test_course_page_states_the_scan_it_shows():
    page = (REPO_ROOT / "course" / "target" / "index.md").read_text()
    families = {p.split(".")[0] for p in BASELINE.probes}
    assert f"{len(BASELINE.probes)} probes from {len(families)} families" in page
    assert f"at most {BASELINE.prompt_cap} prompts per probe" in page
    assert f"seed {BASELINE.seed}" in page


def test_committed_records_carry_current_keys():
    for name in figures.SETS:
        record = figures.load(name)
        assert record["key"] == figures.key(name), f"{name}: run `doubleedge figures`"
    assert figures.load("levels")["spec"] == {
        "probes": len(BASELINE.probes),
        "prompt_cap": BASELINE.prompt_cap,
        "seed": BASELINE.seed,
    }


@pytest.fixture(scope="module")
def fresh_ladder():
    return figures.measure_set("ladder")


def test_committed_ladder_record_matches_a_fresh_measurement(fresh_ladder):
    assert figures.drift_of("ladder", fresh_ladder) == []


def test_only_split_disclosure_reaches_the_top_of_the_ladder(fresh_ladder):
    """The calibration Lab 10's lesson states: the known attacks extract the code at L0, fewer at
    each level up, and at L5 only the technique the lessons name but never show."""
    total = {lv: sum(t["extracted"][lv] for t in fresh_ladder["techniques"]) for lv in fresh_ladder["levels"]}
    counts = [total[lv] for lv in fresh_ladder["levels"]]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts), counts
    assert [t["technique"] for t in fresh_ladder["techniques"] if t["extracted"]["L5"]] == ["split disclosure"]


def test_the_reference_side_of_the_fidelity_record_is_reproduced(tmp_path):
    """The real model's side takes about half an hour and is measured by hand
    (`doubleedge figures --set fidelity`); the reference side is re-run here, scan for scan."""
    committed = {(s["lab"], s["defense"]): s for s in figures.load("fidelity")["scans"] if s["model"] == "reference"}
    for lab, defense in (("01", "none"), ("01", "L2"), ("01", "lab01"), ("12", "none"), ("12", "lab12")):
        fresh = figures._fidelity_scan("reference", lab, defense, tmp_path / f"{lab}-{defense}")
        assert fresh == committed[(lab, defense)], f"Lab {lab} {defense}"
