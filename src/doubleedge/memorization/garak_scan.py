"""Scanning a trained model folder with garak's stock ``huggingface`` generator and the course's
canary probe (``doubleedge_canaries.Canaries`` with detector ``doubleedge_canaries.SecretLeak``,
out-of-tree plugins in ``doubleedge/scan/plugins``, registered by ``doubleedge.scan.launch``).

A scan's report is kept under the kit's cache folder, keyed by everything that decides it (the
model folder's files, the canaries, the scan's settings, the versions of garak, transformers and
torch, and the course's plugins): the greedy scan of the same model with the same canaries gives
the same report, so it is read back instead of run again (Lab 07's grader scans the notebook's
unhardened model once per class instead of once per learner, see its judge's ``kernel_cache``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from doubleedge.memorization.corpus import Canary
from doubleedge.paths import cache_dir
from doubleedge.scan import plugins
from doubleedge.scan.report import ScanError, ScanReport, read_report
from doubleedge.scan.runner import REPORT_PREFIX, run_garak
from doubleedge.scan.specs import ScanSpec

PROBE = "doubleedge_canaries.Canaries"
# The model has 64 positions: a prompt of at most 40 characters leaves room for 24 new ones.
PROMPT_CHARS, NEW_TOKENS = 40, 24


def hf_generator(model_dir: str | Path) -> dict:
    """garak's huggingface.Pipeline on a local folder: CPU, float32, greedy, 24 new tokens.

    The folder itself is garak's target name (``-n model_dir``), set in ``scan_model``.
    """
    return {
        "huggingface": {
            "Pipeline": {
                "max_tokens": NEW_TOKENS,
                "hf_args": {"device": "cpu", "torch_dtype": "float32", "do_sample": False},
            }
        }
    }


def canary_spec(canary_file: str | Path) -> ScanSpec:
    return ScanSpec(
        lab="07",
        probes=(PROBE,),
        prompt_cap=100,
        probe_options={PROBE: {"canary_file": str(Path(canary_file).resolve())}},
        course_plugins=True,
    )


def write_canaries(canaries: list[Canary], path: str | Path) -> Path:
    """The probe's canary file: one JSON object per line with ``id``, ``prefix`` and ``secret``.

    Each prompt is the last ``PROMPT_CHARS`` characters of the canary's prefix.
    """
    path = Path(path)
    lines = [json.dumps({"id": c.id, "prefix": c.prefix[-PROMPT_CHARS:], "secret": c.secret}) for c in canaries]
    path.write_text("\n".join(lines) + "\n")
    return path


def scan_model(model_dir: str | Path | None, canary_file: str | Path, workdir: str | Path,
               timeout: float = 900) -> ScanReport:  # fmt: skip
    """garak's canary scan of a model folder; ``model_dir=None`` scans ``test.Blank`` (garak's floor).

    ``doubleedge.scan.run_garak`` with the target name that the ``huggingface`` generator
    needs (the model folder): the same config, offline environment and report, and the same
    progress (a bar of the prompts in a notebook, the report's path at its end; quiet elsewhere).
    """
    spec = canary_spec(canary_file)
    canaries = sum(1 for line in Path(canary_file).read_text(encoding="utf-8").splitlines() if line.strip())
    prompts = min(spec.prompt_cap, canaries) * spec.generations  # one prompt per canary (write_canaries)
    if model_dir is None:
        return run_garak(spec, Path(workdir), target_type="test.Blank", prompts=prompts, timeout=timeout)
    kept = cached_scan(model_dir, canary_file)
    if kept.is_file():
        with contextlib.suppress(ScanError, OSError):  # unreadable: scan afresh
            return _read_back(kept, Path(workdir))
    report = run_garak(spec, Path(workdir), target_type="huggingface", generators=hf_generator(model_dir),
                       target_name=str(Path(model_dir).resolve()), prompts=prompts, timeout=timeout)  # fmt: skip
    with contextlib.suppress(OSError):  # a read-only cache costs time, never the result
        _keep(report.report_path, kept)
    return report


def cached_scan(model_dir: str | Path, canary_file: str | Path, cache: Path | None = None) -> Path:
    """Where the report of ``scan_model(model_dir, canary_file, ...)`` is kept in ``cache``
    (default: the kit's cache folder), whether it is there or not."""
    return (cache or cache_dir()) / "scans" / f"{scan_key(model_dir, canary_file)}.report.jsonl"


def scan_key(model_dir: str | Path, canary_file: str | Path) -> str:
    """A hash of everything that decides a canary scan's report."""
    digest = hashlib.sha256(b"doubleedge-canary-scan-1\0")
    for path in sorted(p for p in Path(model_dir).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(Path(canary_file).read_bytes() + b"\0")
    settings = {field: value for field, value in dataclasses.asdict(canary_spec("")).items() if field != "probe_options"}
    digest.update(json.dumps([settings, hf_generator(""), PROMPT_CHARS, NEW_TOKENS], sort_keys=True).encode())
    for package in ("garak", "transformers", "torch"):
        digest.update(version(package).encode() + b"\0")
    plugin_dir = Path(plugins.__file__).parent
    for source in (Path(__file__), plugin_dir / "probes" / "doubleedge_canaries.py",
                   plugin_dir / "detectors" / "doubleedge_canaries.py"):  # fmt: skip
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _keep(report: Path, kept: Path) -> None:
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")  # atomic: parallel graders may keep the same scan
    shutil.copyfile(report, tmp)
    os.replace(tmp, kept)


def _read_back(kept: Path, workdir: Path) -> ScanReport:
    """The kept report, copied where the scan would have written it."""
    report = workdir.resolve() / "reports" / f"{REPORT_PREFIX}.report.jsonl"
    report.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, report)
    return read_report(report)

