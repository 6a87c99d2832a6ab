"""How long each Part of each lab's notebook takes to run: the machine's share of a lab, for
the instructors' workshop plan (course/instructors/workshop-plan.md).

Run from the repository root: ``.venv/bin/python bench/lab_cell_times.py [01 02 ...]``.
Runs each lab's source notebook (the reference solution, so every cell runs to the end) in a
copy of its folder, cell by cell in a fresh Jupyter kernel with nbclient, and sums the cells
under each ``## Part`` heading. Prints one JSON line per lab and writes
bench/results/lab_cell_times.json. Seconds, not ratios: they plan a class, they are not a
speed claim; on a busy machine they are upper bounds.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from doubleedge.labs import LABS

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "lab_cell_times.json"
PART = re.compile(r"^## (Part \d+|Submit)", re.MULTILINE)


def time_parts(source: Path) -> dict[str, float]:
    """Seconds per Part (cells before the first Part count as "Setup"), and the total."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / source.parent.name
        shutil.copytree(source.parent, work)
        notebook = nbformat.read(work / source.name, as_version=4)
        client = NotebookClient(notebook, timeout=1800, resources={"metadata": {"path": str(work)}})
        parts: dict[str, float] = {}
        part, start = "Setup", time.monotonic()
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                heading = PART.search(cell.source) if cell.cell_type == "markdown" else None
                part = heading.group(1) if heading else part
                if cell.cell_type == "code":
                    began = time.monotonic()
                    client.execute_cell(cell, index)  # a failing cell stops the run: the figures would lie
                    parts[part] = round(parts.get(part, 0) + time.monotonic() - began, 1)
        parts["total"] = round(time.monotonic() - start, 1)
        return parts


def main(numbers: list[str]) -> int:
    results = {}
    for number in numbers or list(LABS):
        results[number] = time_parts(LABS[number].source_notebook)
        print(number, json.dumps(results[number]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
