"""A Hugging Face model folder run in-process with transformers, on the CPU.

Spec: ``hf:PATH``, a local folder with ``config.json``, the tokenizer files and
``*.safetensors`` weights (what ``hf download ORG/NAME --local-dir PATH`` leaves).
Nothing is fetched from the hub. Weights stored as pickles (``pytorch_model.bin``)
are refused: unpickling a file can run any code in it, and this is a security course.

The model loads on the first message (so ``serve`` starts at once) and generates
greedily. The threaded HTTP server's concurrent requests are decoded together by one
engine (engine.py), which also computes the system prompt's part of the cache once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from doubleedge.models.base import ChatModel, Message, ModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Where a plain-prompt (no chat template) model starts writing the next turn itself.
TURN_MARKERS = ("\nUser:", "\nSystem:", "\nAssistant:")


def plain_prompt(messages: Sequence[Message]) -> str:
    """The prompt for a model without a chat template: one ``Role: text`` line per message."""
    lines = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


def check_model_dir(path: Path) -> Path:
    """``path`` if it is a model folder with safetensors weights, else a ValueError saying what is wrong."""
    if not path.exists():
        raise ValueError(
            f"hf: model folder {str(path)!r} does not exist (hf: takes a local folder; nothing is downloaded)"
        )
    if not path.is_dir():
        raise ValueError(f"hf: {str(path)!r} is not a folder; give the folder that holds config.json")
    if not (path / "config.json").is_file():
        raise ValueError(f"hf: {str(path)!r} has no config.json; is it a Hugging Face model folder?")
    if any(path.glob("*.safetensors")):
        return path
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(
            f"hf: refusing {str(path)!r}: its weights are pickle files ({', '.join(pickles)}), and loading a "
            "pickle can run any code it contains. Use a safetensors copy of the model "
            "(most models publish one; download only '*.safetensors')."
        )
    raise ValueError(f"hf: {str(path)!r} has no *.safetensors weights")


class HuggingFaceModel(ChatModel):
    """A causal language model from a local folder, greedy decoding on the CPU in float32.

    Every request goes through one ``Engine`` (engine.py): concurrent requests are decoded
    together and the prompt's system part is computed once. ``reply_tokens`` caps every
    reply's new tokens (the caller's ``max_new_tokens`` still applies when smaller). The
    weights are loaded once per process (``loaded``): every bot on the same folder shares them.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, reply_tokens: int | None = None) -> None:
        self.path = check_model_dir(Path(path).expanduser())
        self.name = name or f"hf:{self.path}"
        self.reply_tokens = reply_tokens
        self._model: Any = None
        self._tokenizer: Any = None
        self._engine: Any = None

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer, self._model, self._engine = loaded(self.path)

    def _prompt_text(self, messages: Sequence[Message]) -> tuple[str, str]:
        """The whole prompt, and its system part (the prefix shared by a scan's prompts)."""
        tokenizer = self._tokenizer
        system = [m for m in messages[:1] if m.role == "system"]
        if not tokenizer.chat_template:
            return plain_prompt(messages), (plain_prompt(system).removesuffix("Assistant:") if system else "")
        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            head = tokenizer.apply_chat_template(chat[: len(system)], tokenize=False) if system else ""
        except Exception:
            # Some templates (Gemma's, for one) reject a system turn: fold it into the first user turn.
            return tokenizer.apply_chat_template(_fold_system(chat), add_generation_prompt=True, tokenize=False), ""
        return text, head

    def _prompt_ids(self, messages: Sequence[Message]) -> tuple[list[int], list[int]]:
        """The prompt's token ids, split into the shared prefix and the rest."""
        text, head = self._prompt_text(messages)
        # The template already wrote any special tokens (such as a BOS) the model expects.
        ids = self._tokenizer(text, add_special_tokens=False).input_ids
        prefix = self._tokenizer(head, add_special_tokens=False).input_ids if head and text.startswith(head) else []
        if not prefix or ids[: len(prefix)] != prefix or len(prefix) == len(ids):
            return [], ids  # the prefix tokenizes differently inside the whole prompt: no sharing
        return prefix, ids[len(prefix) :]

    def generate(self, messages: Sequence[Message], *, max_new_tokens: int = 256) -> str:
        self._load()
        try:
            prefix, rest = self._prompt_ids(messages)
        except Exception as exc:
            raise ModelError(f"hf backend could not build a prompt for {str(self.path)!r}: {exc}") from exc
        prompt_length = len(prefix) + len(rest)
        context = getattr(self._model.config, "max_position_embeddings", None)
        if context and prompt_length + 1 > context:
            raise ModelError(
                f"hf backend: the prompt is {prompt_length} tokens, more than the {context}-token context "
                f"of {str(self.path)!r}"
            )
        limit = min(max_new_tokens, self.reply_tokens or max_new_tokens, (context or 1 << 30) - prompt_length)
        try:
            tokens = self._engine.generate(prefix, rest, limit)
        except Exception as exc:  # the server answers 502 with this, and goes on
            raise ModelError(f"hf backend: {self.name!r} failed while generating: {exc}") from exc
        text = self._tokenizer.decode(tokens, skip_special_tokens=True)
        if not self._tokenizer.chat_template:
            text = cut_at_next_turn(text)
        text = text.strip()
        if not text:
            raise ModelError(f"hf backend: {self.name!r} gave an empty reply")
        return text


# folder -> (tokenizer, model, engine): one copy of the weights per process.
_LOADED: dict[Path, tuple[Any, Any, Any]] = {}
_LOADING = threading.Lock()


def loaded(path: Path) -> tuple[Any, Any, Any]:
    """The folder's tokenizer, model and engine, loaded on first use and then shared."""
    key = Path(path).resolve()
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = _load(Path(path))
        return _LOADED[key]


def forget_loaded() -> None:
    """Drop the loaded models (the next use loads afresh)."""
    with _LOADING:
        _LOADED.clear()


def _load(path: Path) -> tuple[Any, Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from doubleedge.models.engine import Engine

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            local_files_only=True,
            trust_remote_code=False,  # never run code shipped with a model
            use_safetensors=True,  # never fall back to pickle weights
            dtype=torch.float32,  # loads on the CPU
        )
    except Exception as exc:
        raise ModelError(f"hf backend could not load {str(path)!r}: {exc}") from exc
    model.eval()
    stop_text = None if tokenizer.chat_template else _next_turn_stopper(tokenizer)
    return tokenizer, model, Engine(model, stop_ids=stop_ids(model, tokenizer), stop_text=stop_text)


def _next_turn_stopper(tokenizer: Any) -> Any:
    """For a plain-prompt model: True once the reply starts writing the next speaker's turn."""

    def reached(tokens: list[int]) -> bool:
        tail = tokenizer.decode(tokens[-8:])
        return any(marker in tail for marker in TURN_MARKERS)

    return reached


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a reply: the model's end-of-sequence tokens and the tokenizer's."""
    found = model.generation_config.eos_token_id
    ids = set(found if isinstance(found, list) else [found] if found is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _fold_system(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
    rest = [dict(m) for m in chat if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def cut_at_next_turn(text: str) -> str:
    """Cut a plain-prompt reply where the model starts writing the next speaker's turn."""
    cuts = [i for marker in TURN_MARKERS if (i := text.find(marker)) >= 0]
    return text[: min(cuts)] if cuts else text


def from_spec(rest: str) -> HuggingFaceModel:
    """Build the backend from the part of ``hf:PATH`` after ``hf:``."""
    if not rest.strip():
        raise ValueError("the hf: backend needs a model folder, e.g. hf:models/qwen2.5-0.5b-instruct")
    return HuggingFaceModel(rest)
