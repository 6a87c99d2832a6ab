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
    nb = new_notebook(cells=[new_code_cell(code), new_code_cell(scan)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    training, scanning = (cell.outputs for cell in nb.cells)
    bars = [o for o in training if o.get("output_type") == "display_data" and WIDGET in o.get("data", {})]
    assert len(bars) == 1 and "training:" in bars[0]["data"]["text/plain"] and "/3" in bars[0]["data"]["text/plain"]
    assert any("trained 3" in o.get("text", "") for o in training)
    bars = [o for o in scanning if o.get("output_type") == "display_data" and WIDGET in o.get("data", {})]
    assert len(bars) == 1 and "garak scan (01)" in bars[0]["data"]["text/plain"], scanning
    assert any(o.get("text", "").startswith("probes ") for o in scanning)
