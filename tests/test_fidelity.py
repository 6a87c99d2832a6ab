"""The fidelity set (the reference model against a real one): a build never measures it, and
its page shows every compared scan from the committed record."""

import json

import pytest

from doubleedge import figures


@pytest.fixture
def record():
    return figures.load("fidelity")


def test_a_stale_record_is_shown_not_measured(record, tmp_path, monkeypatch):
    stale = record | {"key": "0000000000000000"}
    figures.save(stale, figures.record_path("fidelity", tmp_path))
    monkeypatch.setattr(figures, "measure_set", lambda *a, **k: pytest.fail("a build measured the fidelity set"))
    said = []
    assert figures.obtain("fidelity", folder=tmp_path, cache=tmp_path, log=said.append) == stale
    assert "doubleedge figures --set fidelity" in said[0]


def test_a_missing_record_names_the_command_that_measures_it(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "measure_set", lambda *a, **k: pytest.fail("a build measured the fidelity set"))
    with pytest.raises(ValueError, match="doubleedge figures --set fidelity"):
        figures.obtain("fidelity", folder=tmp_path, cache=tmp_path, log=lambda _: None)


def test_every_scan_was_measured_on_both_models(record):
    reference, real = record["models"]
    assert (reference, real) == ("reference", figures.REAL_MODEL)
    for model in (reference, real):
        scans = [(s["lab"], s["defense"]) for s in record["scans"] if s["model"] == model]
        assert scans == [tuple(scan) for scan in record["inputs"]["scans"]]
    for scan in record["scans"]:
        attempts = sum(r["attempts"] for r in scan["results"])
        assert attempts > 0, f"{scan['model']} {scan['lab']} {scan['defense']}: no attempt evaluated"
        hits = sum(r["hits"] for r in scan["results"])
        assert scan["attack_success_rate"] == round(hits / attempts, 4)


def test_the_tables_show_every_scan_and_family(record):
    table = figures.fidelity_table(record)
    for reference, real in figures._fidelity_pairs(record):
        assert figures._scan_label(reference) in table
        assert set(reference["families"]) == set(real["families"])
        for family in reference["families"]:
            assert f"`{family}`" in table
    blocking = figures.fidelity_blocking_table(record)
    levels = [s for s in record["scans"] if "ordinary_blocked" in s]
    assert levels and len(blocking.splitlines()) == 2 + len(levels) // 2
    labels = [line.split(" | ")[0] for line in blocking.splitlines()[2:]]
    assert len(set(labels)) == len(labels)  # each row says which lab and defense it is


def test_the_quoted_figures_come_from_the_record(record):
    values = figures.fidelity_values(record)
    pairs = figures._fidelity_pairs(record)
    assert values["fidelity-scans"] == str(len(pairs))
    # The summary is Lab 01's; Lab 12's scans (Bell behind Lab 01's defense, then Lab 12's) are quoted one by one.
    unhardened = [real["attack_success_rate"] for ref, real in pairs if ref["defense"] == "none" and ref["lab"] == "01"]
    assert values["fidelity-unhardened-real"] == figures.percent(sum(unhardened) / len(unhardened))
    for ref, real in pairs:
        name = f"fidelity-{ref['lab']}-{ref['defense'].lower()}"
        assert values[f"{name}-reference"] == figures.percent(ref["attack_success_rate"])
        assert values[f"{name}-real"] == figures.percent(real["attack_success_rate"])
    assert {"fidelity-12-none-real", "fidelity-12-lab12-real"} <= set(values)
    counted = sum(int(values[f"fidelity-families-real-{way}"]) for way in ("higher", "lower"))
    assert counted <= int(values["fidelity-families"])


def test_only_the_fidelity_set_takes_a_model():
    with pytest.raises(ValueError, match="only for the fidelity set"):
        figures.measure_set("levels", model="smollm2")


def test_the_committed_record_is_plain_json():
    text = figures.record_path("fidelity").read_text("utf-8")
    assert json.loads(text)["name"] == "fidelity"
