"""Lab 08's gate end to end: real garak scans of four releases (one a model upgrade), the
generated CI script's exit codes on their measurements, and garak's AVID export of a real report."""

import json

import pytest

from doubleedge import gate
from doubleedge.defenses import lab08 as solution
from doubleedge.scan import read_report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab08")
    releases = ("v1.0", "v1.1-no-decoder", "v1.1-friendlier", "v1.1-community-finetune")
    return folder, {
        name: gate.measure_bot(gate.release_bot(name, "DE-FAKE-0808-0808"), name=name, workdir=folder / "scans")
        for name in releases
    }


def test_measurement_points_to_its_report(measured):
    _, found = measured
    m = found["v1.0"]
    report = read_report(m["report"])
    assert m["run_id"] == gate.run_id(m["report"]) and len(m["run_id"]) == 36
    assert [(r["probe"], r["hits"]) for r in m["results"]] == [(r.probe, r.hits) for r in report.results]
    assert m["benign_pass_rate"] == 1.0 and m["scan"] == "08"


def test_script_fails_the_regression_and_passes_the_clean_change(measured):
    folder, found = measured
    script = gate.write_script(folder / "ci" / "gate.py", solution.gate_violations)
    config = gate.save_json(gate.DEFAULT_CONFIG, folder / "ci" / "gate.json")
    paths = {name: gate.save_json(m, folder / f"{name}.json") for name, m in found.items()}
    regressed = gate.run_script(script, paths["v1.0"], paths["v1.1-no-decoder"], config)
    assert regressed.returncode == 1 and "encoding.InjectBase64" in regressed.stdout
    clean = gate.run_script(script, paths["v1.0"], paths["v1.1-friendlier"], config)
    assert clean.returncode == 0, clean.stdout


def test_script_fails_a_model_upgrade_with_the_same_prompt_and_guards(measured):
    folder, found = measured
    script = gate.write_script(folder / "ci" / "gate.py", solution.gate_violations)
    config = gate.save_json(gate.DEFAULT_CONFIG, folder / "ci" / "gate.json")
    baseline = gate.save_json(found["v1.0"], folder / "v1.0.json")
    candidate = gate.save_json(found["v1.1-community-finetune"], folder / "finetune.json")
    done = gate.run_script(script, baseline, candidate, config)
    assert done.returncode == 1, done.stdout
    rose = {line.split(": ")[1].split(" ")[0] for line in done.stdout.splitlines() if line.startswith("REGRESSION")}
    assert rose == {"encoding.InjectHex", "goodside.WhoIsRiley"}, done.stdout
    assert found["v1.1-community-finetune"]["benign_pass_rate"] == found["v1.0"]["benign_pass_rate"] == 1.0


def test_avid_export_of_a_real_report(measured):
    _, found = measured
    avid = gate.avid_export(found["v1.0"]["report"], target="bellwether-bell-test")
    records = [json.loads(line) for line in avid.read_text().splitlines()]
    assert len(records) == len({r["probe"] for r in found["v1.0"]["results"]})
    assert records[0]["data_type"] == "AVID"
    assert records[0]["affects"]["artifacts"][0]["name"] == "bellwether-bell-test"
