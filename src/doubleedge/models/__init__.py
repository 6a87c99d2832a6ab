"""Model backends behind one interface (see ``base.ChatModel``).

``load_model(spec)`` builds one from a ``--model`` spec: ``PREFIX`` or ``PREFIX:ARGUMENT``,
the prefix picking a backend in ``BACKENDS``. The backends that run a real model load
their heavy dependencies (torch, transformers) only when used.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from doubleedge.models import gguf, huggingface, ollama, openai_compat
from doubleedge.models.base import ChatModel, Message, ModelError
from doubleedge.models.reference import FinetunedReferenceModel, ReferenceModel

__all__ = [
    "BACKENDS", "ChatModel", "Message", "ModelError", "ReferenceModel", "load_model", "model_specs", "start_loading",
]


def _reference(argument: str) -> ChatModel:
    # "reference:finetune" is Lab 08's model upgrade: the same engine with some safety tuning lost.
    variants = {"": ReferenceModel, "finetune": FinetunedReferenceModel}
    if argument not in variants:
        raise ValueError("the reference model takes no argument but 'finetune': use --model reference")
    return variants[argument]()


# prefix -> (spec shown to users, factory taking the text after "prefix:")
BACKENDS: dict[str, tuple[str, Callable[[str], ChatModel]]] = {
    "reference": ("reference[:finetune]", _reference),
    "smollm2": ("smollm2", gguf.smollm2_from_spec),
    "gguf": ("gguf:PATH", gguf.gguf_from_spec),
    "hf": ("hf:PATH", huggingface.from_spec),
    "openai": ("openai:URL#MODEL", openai_compat.from_spec),
    "ollama": ("ollama:NAME", ollama.from_spec),
}


def model_specs() -> str:
    """The accepted spec forms, for help texts and errors: ``reference, hf:PATH, ...``."""
    return ", ".join(form for form, _ in BACKENDS.values())


def load_model(spec: str = "reference") -> ChatModel:
    """Build a backend from a ``--model`` spec; a ValueError says what is wrong with a bad one."""
    prefix, _, argument = spec.partition(":")
    if prefix not in BACKENDS:
        raise ValueError(f"unknown model {spec!r}; available: {model_specs()}")
    _, factory = BACKENDS[prefix]
    return factory(argument)


def start_loading(spec: str) -> threading.Thread:
    """Load a local model's weights in a background thread (a no-op for the others).

    ``serve`` and ``scan`` call it before they build the bot: the load (seconds for SmolLM2)
    then overlaps their own start-up and garak's, instead of waiting for the first request.
    The weights are shared (``huggingface.loaded``), so the bot built next uses them. A
    failure is left to the bot's first reply, which reports it.
    """

    def load() -> None:
        with contextlib.suppress(Exception):
            model = load_model(spec)
            if isinstance(model, huggingface.HuggingFaceModel):
                huggingface.loaded(model.path)

    thread = threading.Thread(target=load, name="doubleedge-model-load", daemon=True)
    thread.start()
    return thread
