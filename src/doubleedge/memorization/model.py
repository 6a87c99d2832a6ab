"""A tiny character-level transformer language model, shaped exactly like GPT-2.

It is small enough to train on two CPU cores in seconds. Its layers mirror Hugging
Face's ``GPT2LMHeadModel`` one to one (pre-norm blocks, learned positions, tanh GELU;
only the output layer is not tied to the input embedding), so ``save_pretrained`` writes an ordinary transformers folder
(safetensors weights, a character tokenizer) that any tool loads without custom code:
``transformers.pipeline``, or garak's ``huggingface`` generator. Plain ``nn.Linear``,
``nn.Embedding`` and ``nn.LayerNorm`` layers also keep it compatible with Opacus.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CHARS = "\n" + "".join(chr(i) for i in range(32, 127))
UNKNOWN = "?"
STOI = {ch: i for i, ch in enumerate(CHARS)}


def encode(text: str) -> list[int]:
    return [STOI.get(ch, STOI[UNKNOWN]) for ch in text]


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i] for i in ids)


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    n_ctx: int = 64
    vocab_size: int = len(CHARS)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.attn_proj = nn.Linear(config.n_embd, config.n_embd)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.mlp_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extend(x)[0]

    def extend(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """The block on positions ``x`` that follow the earlier positions whose keys and values are
        ``past`` (one row, shared by the whole batch; None: no earlier positions). Returns the
        output and the keys and values of ``x``'s positions."""
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.n_head, width // self.n_head).transpose(1, 2)
                   for t in self.c_attn(self.ln_1(x)).split(width, dim=2))  # fmt: skip
        before = 0 if past is None else past[0].shape[2]
        keys, values = (k, v) if past is None else (torch.cat([p.expand(batch, -1, -1, -1), t], dim=2)
                                                     for p, t in zip(past, (k, v), strict=True))  # fmt: skip
        scores = (q @ keys.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        mask = torch.ones(before + length, before + length, dtype=torch.bool, device=x.device).tril()[before:]
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        attended = (scores.softmax(dim=-1) @ values).transpose(1, 2).reshape(batch, length, width)
        x = x + self.attn_proj(attended)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")), (k, v)


class CharLM(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_ctx, c.n_embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd)
        # Not tied to wte (GPT-2 ties them): Opacus computes per-example gradients per module,
        # and a weight used by two modules would get only one module's share.
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits for the next character at every position: (batch, length, vocab)."""
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The characters ``ids`` (batch, length) at positions ``start`` onwards, embedded."""
        positions = torch.arange(start, start + ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        return self.wte(ids) + self.wpe(positions)

    @torch.no_grad()
    def next_char_logprobs(self, text: str) -> dict[str, float]:
        """log p(next character | text), for every character."""
        ids = torch.tensor([encode(text[-self.config.n_ctx :])])
        logprobs = self(ids)[0, -1].log_softmax(-1)
        return {ch: float(logprobs[i]) for i, ch in enumerate(CHARS)}

    @torch.no_grad()
    def greedy(self, text: str, length: int) -> str:
        """The ``length`` most likely next characters, one at a time."""
        out = text
        for _ in range(length):
            ids = torch.tensor([encode(out[-self.config.n_ctx :])])
            out += CHARS[int(self(ids)[0, -1].argmax())]
        return out[len(text) :]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- Hugging Face format ----------------------------------------------------------------


TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_state_dict(model: CharLM) -> dict[str, torch.Tensor]:
    """Our weights under GPT-2's names (its Conv1D layers store Linear weights transposed)."""
    sd = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight}
    for i, b in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd |= {
            p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": b.ln_1.bias,
            p + "attn.c_attn.weight": b.c_attn.weight.T, p + "attn.c_attn.bias": b.c_attn.bias,
            p + "attn.c_proj.weight": b.attn_proj.weight.T, p + "attn.c_proj.bias": b.attn_proj.bias,
            p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": b.ln_2.bias,
            p + "mlp.c_fc.weight": b.c_fc.weight.T, p + "mlp.c_fc.bias": b.c_fc.bias,
            p + "mlp.c_proj.weight": b.mlp_proj.weight.T, p + "mlp.c_proj.bias": b.mlp_proj.bias,
        }  # fmt: skip
    sd |= {"transformer.ln_f.weight": model.ln_f.weight, "transformer.ln_f.bias": model.ln_f.bias}
    sd["lm_head.weight"] = model.lm_head.weight
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def _tokenizer():  # transformers is imported lazily: it is slow to import
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(STOI, unk_token=UNKNOWN))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNKNOWN, eos_token="\n")


def save_pretrained(model: CharLM, folder: str | Path) -> Path:
    """Write a transformers GPT-2 folder: config.json, model.safetensors, a character tokenizer."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = model.config
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.n_ctx,
        "n_ctx": c.n_ctx,
        "n_embd": c.n_embd,
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "torch_dtype": "float32",
    }  # no tokenizer_class key: garak's huggingface.Model would look it up on the hub
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": 0}))
    save_file(hf_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _tokenizer().save_pretrained(str(folder))
    (folder / "doubleedge.json").write_text(json.dumps(asdict(c)))
    return folder


def unfilled(config: ModelConfig) -> CharLM:
    """A model of ``config`` whose weights are about to be read from a file, made without drawing
    random initial weights: loading a model must not move torch's global random generator, from
    which a training in another thread of the process draws its initial weights after seeding it."""
    with torch.device("meta"):
        model = CharLM(config)
    return model.to_empty(device="cpu")


def load_pretrained(folder: str | Path) -> CharLM:
    """The inverse of ``save_pretrained`` (reads safetensors only: no pickle, no code)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    model = unfilled(ModelConfig(**json.loads((folder / "doubleedge.json").read_text())))
    sd = load_file(folder / "model.safetensors")
    ours = hf_state_dict(model)
    with torch.no_grad():
        for (name, _), param in zip(ours.items(), _parameters_in_hf_order(model), strict=True):
            value = sd[name]
            param.copy_(value.T if name.endswith(TRANSPOSED) else value)
    return model


def _parameters_in_hf_order(model: CharLM) -> list[torch.Tensor]:
    params = [model.wte.weight, model.wpe.weight]
    for b in model.blocks:
        params += [b.ln_1.weight, b.ln_1.bias, b.c_attn.weight, b.c_attn.bias, b.attn_proj.weight, b.attn_proj.bias,
                   b.ln_2.weight, b.ln_2.bias, b.c_fc.weight, b.c_fc.bias, b.mlp_proj.weight, b.mlp_proj.bias]  # fmt: skip
    return [*params, model.ln_f.weight, model.ln_f.bias, model.lm_head.weight]
