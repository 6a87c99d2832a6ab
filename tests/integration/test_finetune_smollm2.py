"""The customization fine-tune (doubleedge.finetune) run for real on SmolLM2, for two steps: the
adapter is trained (its weights move), it and the merged model are saved as safetensors only, and
the merged model answers differently from the base model. Nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from doubleedge import finetune
from doubleedge.models import gguf

pytestmark = pytest.mark.integration

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PROBE = "How much is express shipping?"


@pytest.fixture(scope="module")
def base_dir():
    """SmolLM2 from the model cache that `make` filled (converted here only if it is missing; the
    offline-install test converts it afresh)."""
    return gguf.smollm2_dir()


@pytest.fixture(scope="module")
def run(base_dir, tmp_path_factory):
    return finetune.finetune(base_dir, tmp_path_factory.mktemp("finetuned"), steps=2)


def test_two_steps_train_the_adapter(run):
    assert run.steps == 2 and len(run.losses) == 2 and all(loss > 0 for loss in run.losses)
    weights = load_file(run.adapter_dir / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    # peft starts every lora_B at zero, so the adapter is a no-op until training moves it.
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)
    assert run.trainable_parameters == sum(t.numel() for t in weights.values())


def test_everything_saved_is_safetensors(run):
    for folder in (run.adapter_dir, run.model_dir):
        names = [p.name for p in folder.iterdir()]
        assert any(n.endswith(".safetensors") for n in names), names
        assert not [n for n in names if n.endswith(PICKLE_SUFFIXES)], names


def test_the_merged_model_differs_from_the_base_model(base_dir, run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)  # fmt: skip
    logits = []
    for folder in (base_dir, run.model_dir):
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        with torch.no_grad():
            logits.append(model(**ids).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)
    base = load_file(base_dir / "model.safetensors")
    merged = load_file(run.model_dir / "model.safetensors")
    changed = [name for name in base if not torch.equal(base[name], merged[name])]
    assert changed and all(("q_proj" in n or "v_proj" in n) for n in changed), changed[:5]


def test_the_merged_model_is_scanned_by_garak_as_the_base_model_is(run, tmp_path):
    """The merged folder served through Bell's app and scanned by real garak, with the record's scan
    settings cut to one probe and one prompt: a reply comes back, scored and kept."""
    from dataclasses import replace

    from doubleedge.target import derive_secret

    spec = replace(finetune.SCAN, probes=("promptinject.HijackHateHumans",), prompt_cap=1)
    scanned = finetune.scan_model(finetune.model_for(run.model_dir, "after"), derive_secret("test"), tmp_path, spec)
    assert [(r["probe"], r["attempts"]) for r in scanned["results"]] == [("promptinject.HijackHateHumans", 1)]
    (reply,) = scanned["replies"]
    assert reply["reply"] and reply["hit"] == bool(scanned["results"][0]["hits"])
    assert set(scanned["families"]) == {"promptinject"}
