"""Lab 06's reference solution: what a poisoned file's payload wrote, a loading policy for
downloaded model files, and a check of a GGUF file's chat template against its publisher's record.

The lab notebook's solution cell holds the same code (a test keeps them in sync).
Graded learner code may not import this module.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from doubleedge.supplychain import UnsafeModelError, sha256_file
from doubleedge.supplychain.artifacts import SMOLLM2_PUBLISHED, chat_template, text_sha256


def read_marker(model_file: str, marker_file: str) -> str:
    """The text that the payload of the pickle at model_file writes into marker_file."""
    torch.load(model_file, weights_only=False)  # on purpose: loading runs the payload, which writes the marker
    return Path(marker_file).read_text().strip()


def safe_load(path: str, expected_sha256: str) -> dict:
    """Load weights only if they match the published hash and cannot run code."""
    path = Path(path)
    if path.is_dir():
        config_file = path / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if "auto_map" in config or any(path.glob("*.py")):
            raise UnsafeModelError("the folder ships code that would need trust_remote_code")
        weights = sorted(path.glob("*.safetensors"))
        if len(weights) != 1:
            raise UnsafeModelError("expected exactly one .safetensors weights file")
        path = weights[0]
    if sha256_file(path) != expected_sha256.strip().lower():
        raise UnsafeModelError("sha256 does not match the published hash")
    if path.suffix == ".safetensors":
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)  # an allowlist: tensors, not code
    if not isinstance(state, dict):
        raise UnsafeModelError("not a state dict")
    return state


def template_is_trusted(path: str) -> bool:
    """True only if the GGUF file's chat template is the one its publisher released."""
    return text_sha256(chat_template(path)) == SMOLLM2_PUBLISHED["chat_template_sha256"]
