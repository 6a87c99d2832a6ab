"""Seeded, deterministic training of the tiny language model on CPU, with optional DP-SGD.

Determinism: a fixed seed for the weights and for the batches, one CPU thread,
``torch.use_deterministic_algorithms(True)``. Two runs on one machine give identical
weights (tests/memorization/test_train.py). Across machines floating-point sums may
differ in the last bits, so grades are defined with margins (see grading/lab07.py).

DP-SGD (Abadi et al. 2016) clips each example's gradient to ``max_grad_norm`` and adds
Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` to the sum,
so no single example can move the model much. It is done with Opacus.

Trained models are kept (safetensors, one file each) under the kit's cache folder,
keyed by everything that decides the weights: the documents, the settings, the torch
and Opacus versions and this module's and the model's source. The lab notebook, the
grader and the course's figures train the same unhardened model; it is trained once, also
when several processes ask for it at the same moment (one trains, the others wait for its file).
The grader's checker, which may write only in its result folder, also reads the grader's models
(``$DOUBLEEDGE_KEPT_MODELS``, read-only); the grader then adopts the ones it trained
(``adopt_trained``), so regrading a class trains no model twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch
from torch.nn import functional as F

from doubleedge.memorization import model as model_module
from doubleedge.memorization.model import CharLM, ModelConfig, encode, unfilled
from doubleedge.paths import KEPT_MODELS_ENV, trained_dir
from doubleedge.progressbar import notebook_bar

CACHE_FORMAT = "doubleedge-trained-1"
MODEL_FILE = re.compile(r"[0-9a-f]{64}\.safetensors")  # a trained model's file: its key, then the suffix


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    seed: int = 0
    # DP-SGD (Opacus). None: ordinary training.
    noise_multiplier: float | None = None
    max_grad_norm: float = 1.0
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        allowed = {"steps", "batch_size", "lr", "noise_multiplier", "max_grad_norm"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**values)


@dataclass
class TrainResult:
    model: CharLM
    losses: list[float]
    seconds: float
    epsilon: float | None = None  # DP guarantee at delta = 1e-5, if trained with DP-SGD
    key: str = ""  # training_key of the documents and settings
    cached: bool = False  # read from the cache rather than trained in this call


@contextlib.contextmanager
def deterministic(threads: int = 1) -> Iterator[None]:
    """One thread, deterministic kernels; restores the previous settings afterwards."""
    old_threads, old_flag = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_flag)


def windows(documents: list[str], seq_len: int) -> torch.Tensor:
    """The corpus cut into non-overlapping training examples of ``seq_len + 1`` characters."""
    ids = encode("\n".join(documents))
    n = (len(ids) - 1) // seq_len
    if n == 0:
        raise ValueError("the corpus is too small for one training example")
    data = torch.tensor(ids[: n * seq_len + 1])
    return torch.stack([data[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)])


def _loss(model: CharLM, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train(documents: list[str], config: TrainConfig | None = None, *, cache: bool = True) -> TrainResult:
    """Train a fresh model on ``documents``; identical results for identical inputs.

    With ``cache``, a model trained before on the same inputs is read back instead."""
    config = config or TrainConfig()
    if not documents:
        raise ValueError("no training documents")
    key = training_key(documents, config)
    if not cache:
        return _keyed(_train(documents, config), key)
    path = trained_dir() / f"{key}.safetensors"
    with _one_trainer(path):
        for found in (path, _kept(key)):
            if found is not None and found.is_file():
                with contextlib.suppress(ValueError, OSError):  # unreadable or stale: train afresh
                    return load_trained(found, key)
        result = _keyed(_train(documents, config), key)
        with contextlib.suppress(OSError):  # a read-only cache costs time, never the result
            save_trained(result, path)
    return result


def _kept(key: str) -> Path | None:
    """Where the read-only folder of ``$DOUBLEEDGE_KEPT_MODELS`` would hold the model of ``key``."""
    folder = os.environ.get(KEPT_MODELS_ENV)
    return Path(folder) / f"{key}.safetensors" if folder else None


def adopt_trained(found: Path, into: Path | None = None) -> list[str]:
    """Keep in ``into`` (default: this process's models) the models that another process trained
    into ``found`` (the grader's checker, in its result folder). Only a regular file named by its
    key that loads as a model trained on that key's inputs is kept; returns the keys adopted."""
    into = into or trained_dir()
    adopted = []
    for file in sorted(found.iterdir()) if found.is_dir() else []:
        target = into / file.name
        if not MODEL_FILE.fullmatch(file.name) or file.is_symlink() or not file.is_file() or target.is_file():
            continue
        tmp = into / f".{file.name}.{os.getpid()}.{threading.get_ident()}.adopt"  # graders adopt in threads
        try:
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, tmp)  # checked as copied: what is kept is what was checked
            load_trained(tmp, file.name.removesuffix(".safetensors"))
            os.replace(tmp, target)
        except (ValueError, OSError):
            continue
        finally:
            tmp.unlink(missing_ok=True)
        adopted.append(target.stem)
    return adopted


def _keyed(result: TrainResult, key: str) -> TrainResult:
    result.key = key
    return result


@contextlib.contextmanager
def _one_trainer(path: Path) -> Iterator[None]:
    """Held while a process looks for, or trains, the model of ``path``: parallel graders
    or test workers that need the same model wait for the first one's file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a")
    except OSError:  # a read-only cache: nobody writes, so there is nothing to wait for
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def training_key(documents: list[str], config: TrainConfig) -> str:
    """A hash of everything that decides the trained weights."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    for part in (json.dumps(documents), json.dumps(asdict(config), sort_keys=True), version("torch"),
                 version("opacus") if config.noise_multiplier is not None else ""):  # fmt: skip
        digest.update(part.encode() + b"\0")
    for source in (__file__, model_module.__file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()


def save_trained(result: TrainResult, path: str | Path, measured: dict[str, float] | None = None) -> Path:
    """One safetensors file: the weights, and the numbers of the run as metadata (``measured``:
    numbers measured on the trained model, read back with ``measured_on``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": CACHE_FORMAT,
        "key": result.key,
        "model": json.dumps(asdict(result.model.config)),
        "losses": json.dumps(result.losses),
        "seconds": repr(result.seconds),
        "epsilon": json.dumps(result.epsilon),
        "measured": json.dumps(measured or {}),
    }
    weights = {name: value.contiguous() for name, value in result.model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # atomic: parallel graders may write the same key
    save_file(weights, tmp, metadata=meta)
    os.replace(tmp, path)
    return path


def load_trained(path: str | Path, key: str | None = None) -> TrainResult:
    """The inverse of ``save_trained``; ValueError if the file is not one, or was trained on other inputs."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as stream:
            meta = stream.metadata() or {}
            weights = {name: stream.get_tensor(name) for name in stream.keys()}
        if meta.get("format") != CACHE_FORMAT or (key is not None and meta.get("key") != key):
            raise ValueError(f"{path} is not a model trained on these inputs")
        model = unfilled(ModelConfig(**json.loads(meta["model"])))
        model.load_state_dict(weights)
        result = TrainResult(model, json.loads(meta["losses"]), float(meta["seconds"]),
                             json.loads(meta["epsilon"]), meta["key"], cached=True)  # fmt: skip
    except ValueError:
        raise
    except Exception as exc:  # a truncated or foreign file: safetensors and torch raise many kinds
        raise ValueError(f"{path} is not a trained model file ({type(exc).__name__})") from None
    model.eval()
    return result


def measured_on(path: str | Path) -> dict[str, float]:
    """The numbers ``save_trained`` stored as measured on the model in ``path`` ({} if none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as stream:
        measured = json.loads((stream.metadata() or {}).get("measured") or "{}")
    return {str(k): float(v) for k, v in measured.items()} if isinstance(measured, dict) else {}


def _train(documents: list[str], config: TrainConfig) -> TrainResult:
    with deterministic():
        torch.manual_seed(config.seed)
        model = CharLM(config.model)
        examples = windows(documents, config.seq_len)
        if len(examples) < config.batch_size:
            raise ValueError("the corpus is too small for one batch")
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
        generator = torch.Generator().manual_seed(config.seed + 1)
        start = time.perf_counter()
        bar = notebook_bar(config.steps, "training", unit="step")
        tick = bar.update if bar is not None else (lambda: None)
        if config.noise_multiplier is None:
            losses = _train_plain(model, optimizer, examples, config, generator, tick)
            epsilon = None
        else:
            losses, epsilon = _train_dp(model, optimizer, examples, config, generator, tick)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, losses, seconds, epsilon)


def _lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up over 20 steps, then cosine decay to a tenth."""
    if step < 20:
        return config.lr * (step + 1) / 20
    progress = (step - 20) / max(1, config.steps - 20)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _train_plain(model, optimizer, examples, config, generator, tick) -> list[float]:
    losses = []
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        batch = examples[torch.randint(len(examples), (config.batch_size,), generator=generator)]
        loss = _loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        tick()
    return losses


def _train_dp(model, optimizer, examples, config, generator, tick) -> tuple[list[float], float]:
    from opacus import GradSampleModule
    from opacus.accountants import RDPAccountant
    from opacus.optimizers import DPOptimizer

    # Batches are drawn uniformly with replacement here (not Poisson sampling), so the
    # epsilon reported by the RDP accountant for sampling rate batch/N is an estimate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp_model = GradSampleModule(model)
        dp_optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=config.noise_multiplier,
            max_grad_norm=config.max_grad_norm,
            expected_batch_size=config.batch_size,
            generator=torch.Generator().manual_seed(config.seed + 2),
        )
    accountant = RDPAccountant()
    rate = config.batch_size / len(examples)
    losses = []
    for step in range(config.steps):
        for group in dp_optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        batch = examples[torch.randint(len(examples), (config.batch_size,), generator=generator)]
        loss = _loss(dp_model, batch)
        dp_optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook")  # Opacus' hooks on the embedding
            loss.backward()
        dp_optimizer.step()
        accountant.step(noise_multiplier=config.noise_multiplier, sample_rate=rate)
        losses.append(float(loss.detach()))
        tick()
    dp_model._close()
    epsilon = accountant.get_epsilon(delta=1e-5) if config.noise_multiplier > 0 else math.inf
    return losses, float(epsilon)
