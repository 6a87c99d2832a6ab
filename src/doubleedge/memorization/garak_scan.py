"""Scanning a trained model folder with garak's stock ``huggingface`` generator and the course's
canary probe (``doubleedge_canaries.Canaries`` with detector ``doubleedge_canaries.SecretLeak``,
out-of-tree plugins in ``doubleedge/scan/plugins``, registered by ``doubleedge.scan.launch``).
"""

from __future__ import annotations

import json
from pathlib import Path

from doubleedge.memorization.corpus import Canary
from doubleedge.scan.report import ScanReport
from doubleedge.scan.runner import run_garak
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
    return run_garak(spec, Path(workdir), target_type="huggingface", generators=hf_generator(model_dir),
                     target_name=str(Path(model_dir).resolve()), prompts=prompts, timeout=timeout)  # fmt: skip

