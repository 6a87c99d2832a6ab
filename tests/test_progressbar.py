"""Progress bars for long notebook cells: a JupyterLab widget in a kernel, nothing elsewhere."""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from doubleedge.progressbar import notebook_bar

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_no_bar_outside_a_notebook():
    assert notebook_bar(10, "training") is None


@pytest.mark.integration
def test_training_and_scans_show_one_widget_bar_each_in_a_kernel(tmp_path):
    from nbclient import NotebookClient

    code = (
        "from doubleedge.memorization.train import TrainConfig, train\n"
        "from doubleedge.memorization.corpus import clean_heldout_text\n"
        "run = train([clean_heldout_text()], TrainConfig(steps=3, batch_size=4))\n"
        "print('trained', len(run.losses))"
    )
    scan = (
        "from doubleedge.models import ReferenceModel\n"
        "from doubleedge.scan import scan_bot, scan_for_lab\n"
        "from doubleedge.target import SupportBot\n"
        "report = scan_bot(SupportBot(ReferenceModel(), secret='DE-FAKE-0000-0000'), scan_for_lab('01'))\n"
        "print('probes', len({r.probe for r in report.results}))"
    )
    canaries = (
        "from doubleedge.memorization import lab_canaries\n"
        "from doubleedge.memorization.garak_scan import scan_model, write_canaries\n"
        "canary_file = write_canaries(list(lab_canaries())[:3], 'canaries.jsonl')\n"
        "floor = scan_model(None, canary_file, 'canary-scan')\n"  # garak's test.Blank: the scan without a model
        "print('prompts', floor.attempts)"
    )
    nb = new_notebook(cells=[new_code_cell(code), new_code_cell(scan), new_code_cell(canaries)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    training, scanning, canary_scan = (cell.outputs for cell in nb.cells)
    bars = [o for o in training if o.get("output_type") == "display_data" and WIDGET in o.get("data", {})]
    assert len(bars) == 1 and "training:" in bars[0]["data"]["text/plain"] and "/3" in bars[0]["data"]["text/plain"]
    assert any("trained 3" in o.get("text", "") for o in training)
    bars = [o for o in scanning if o.get("output_type") == "display_data" and WIDGET in o.get("data", {})]
    assert len(bars) == 1 and "garak scan (01)" in bars[0]["data"]["text/plain"], scanning
    assert any(o.get("text", "").startswith("probes ") for o in scanning)
    bars = [o for o in canary_scan if o.get("output_type") == "display_data" and WIDGET in o.get("data", {})]
    assert len(bars) == 1 and "garak scan (07)" in bars[0]["data"]["text/plain"], canary_scan
    assert any("prompts 3" in o.get("text", "") for o in canary_scan), canary_scan
    # The bars' last state (what JupyterLab shows at the end): every prompt counted, the report's path.
    shown = widget_texts(nb)
    assert "garak scan (07): 100%" in shown, shown
    assert any(t.startswith(" 3/3 [") and "report: " in t and "canary-scan" in t for t in shown), shown


def widget_texts(nb) -> list[str]:  # a notebook nbclient ran, with its widgets' state
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [m["state"]["value"].replace("\u2007", " ") for m in state.values() if m.get("model_name") == "HTMLModel"]


@pytest.mark.integration
def test_the_canary_scan_is_quiet_outside_a_notebook(tmp_path, capfd):
    from doubleedge.memorization import lab_canaries
    from doubleedge.memorization.garak_scan import scan_model, write_canaries

    canary_file = write_canaries(list(lab_canaries())[:2], tmp_path / "canaries.jsonl")
    report = scan_model(None, canary_file, tmp_path / "scan")
    assert report.attempts == 2 and report.report_path.is_file()
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""
