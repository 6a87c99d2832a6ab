"""Lab 06, part 5: reading and rewriting SmolLM2's GGUF file, as ratios in one run.

Run from the repository root: ``.venv/bin/python bench/gguf_artifacts.py [--repeat N]``.

The baseline of every row is ``sha256`` of the 98 MB file (reading every byte once), measured
alternately with the subjects:

* **GGUFReader**: ``gguf.GGUFReader`` opening the file (it decodes every key first, the
  tokenizer's ~100,000 strings included): how the kit read the header before;
* **metadata walk**: ``gguf_metadata``, the kit's walk of the header (past the strings, not
  through them), which decodes only the keys it reports;
* **chat_template walk**: ``chat_template`` (what ``template_is_trusted`` and the grader call per file);
* **tampered copy**: ``write_tampered`` from the file (the header walked, the template replaced,
  the rest copied as stored), what each graded copy costs.

Exits 0: this is a report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gguf

from doubleedge.models.gguf import smollm2_file
from doubleedge.supplychain.artifacts import (
    LAB_BACKDOOR,
    SMOLLM2_PUBLISHED,
    chat_template,
    gguf_metadata,
    text_sha256,
    write_tampered,
)
from doubleedge.supplychain.build import sha256_file


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = smollm2_file()
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as scratch:
        target = Path(scratch) / "tampered.gguf"

        def copy() -> None:
            write_tampered(path, target, LAB_BACKDOOR)
            assert chat_template(target) != chat_template(path)

        subjects = {
            "GGUFReader": lambda: gguf.GGUFReader(path),
            "metadata walk": lambda: gguf_metadata(path),
            "chat_template walk": lambda: text_sha256(chat_template(path)) == SMOLLM2_PUBLISHED["chat_template_sha256"],
            "tampered copy": copy,
        }
        rows = []
        for name, work in subjects.items():
            subject, baseline = [], []
            for _ in range(args.repeat):
                subject.append(timed(work))
                baseline.append(timed(lambda: sha256_file(path)))
            rows.append((name, statistics.median(subject), statistics.median(baseline)))
    print(f"{'subject':22} {'median s':>9} {'sha256 s':>9} {'ratio':>7}")
    for name, subject, baseline in rows:
        print(f"{name:22} {subject:9.3f} {baseline:9.3f} {subject / baseline:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
