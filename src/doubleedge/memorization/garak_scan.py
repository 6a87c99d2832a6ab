"""Scanning a trained model folder with garak's stock ``huggingface`` generator and the course's
canary probe (``doubleedge_canaries.Canaries`` with detector ``doubleedge_canaries.SecretLeak``,
out-of-tree plugins in ``doubleedge/scan/plugins``, registered by ``doubleedge.scan.launch``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from doubleedge.memorization.corpus import Canary
from doubleedge.scan.report import ScanError, ScanReport, read_report
from doubleedge.scan.runner import REPORT_PREFIX, garak_config, garak_env
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

    Like ``doubleedge.scan.run_garak`` (same config, offline environment and report), plus
    the target name that the ``huggingface`` generator needs: the model folder.
    """
    spec = canary_spec(canary_file)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if model_dir is None:
        config = garak_config(spec, workdir, target_type="test.Blank")
    else:
        config = garak_config(spec, workdir, target_type="huggingface", generators=hf_generator(model_dir))
        config["plugins"]["target_name"] = str(Path(model_dir).resolve())
    path = workdir / "garak.yaml"
    path.write_text(json.dumps(config, indent=1))
    command = [sys.executable, "-m", "doubleedge.scan.launch", "--config", str(path), "--spec", spec.spec]
    try:
        done = subprocess.run(command, cwd=workdir, env=garak_env(workdir), capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ScanError(f"garak did not finish within {timeout:.0f} s") from None
    try:
        return read_report(workdir / "reports" / f"{REPORT_PREFIX}.report.jsonl")
    except ScanError as exc:
        raise ScanError(
            f"{exc}\n--- garak output (exit {done.returncode}) ---\n{(done.stdout + done.stderr)[-1500:]}"
        ) from None
