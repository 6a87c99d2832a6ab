"""The corpus, the model and its Hugging Face export, and exposure: fast unit tests."""

import math
import random

import pytest
import torch

from doubleedge.defenses.lab07 import harden_corpus, scrub
from doubleedge.grading.labs import get_lab
from doubleedge.memorization import CharLM, ModelConfig, lab_canaries, load_canaries, make_corpus
from doubleedge.memorization.corpus import Canary, canary_document
from doubleedge.memorization.exposure import exposure_from_rank, log_perplexities, measure_exposure, perplexity
from doubleedge.memorization.model import decode, encode, load_pretrained, save_pretrained
from doubleedge.memorization.scrub import deduplicate


def test_corpus_is_seeded_and_holds_each_canary_count_times():
    canaries = lab_canaries()
    one, two = make_corpus(canaries, documents=50), make_corpus(canaries, documents=50)
    assert one == two
    for canary, count in canaries.items():
        assert sum(canary_document(canary) == d for d in one) == count
    assert make_corpus(canaries, documents=50, seed=1) != one


def test_canaries_are_visibly_fake_and_candidates_keep_the_format():
    rng = random.Random(0)
    for canary in lab_canaries():
        assert "4000 0000" in canary.prefix or "DE-FAKE-KEY-" in canary.prefix
        candidate = canary.candidate(rng)
        assert len(candidate) == len(canary.secret)
        assert all(
            (a in canary.alphabet) == (b in canary.alphabet) for a, b in zip(candidate, canary.secret, strict=False)
        )
    assert Canary("c", "p", "1234 5678").space_bits == pytest.approx(8 * math.log2(10))


def test_heldout_canaries_load_with_counts():
    canaries = load_canaries(get_lab("07").heldout_attacks)
    assert len(canaries) >= 20 and len({c.id for c in canaries}) == len(canaries)
    assert sum(1 for n in canaries.values() if n >= 64) >= 2
    assert not {c.secret for c in canaries} & {c.secret for c in lab_canaries()}


def test_encode_decode_round_trip():
    assert decode(encode("Hi!\n4000 {x}")) == "Hi!\n4000 {x}"
    assert decode(encode("é")) == "?"


@pytest.mark.parametrize(("rank", "size", "bits"), [(1, 2**20, 20), (2**20, 2**20, 0), (4, 16, 2)])
def test_exposure_from_rank(rank, size, bits):
    assert exposure_from_rank(rank, size) == pytest.approx(bits)
    with pytest.raises(ValueError):
        exposure_from_rank(0, size)


def test_log_perplexities_match_a_step_by_step_computation():
    torch.manual_seed(0)
    model = CharLM(ModelConfig(n_layer=1, n_embd=16, n_head=2))
    prefix, secret = "card 4000 ", "1234"
    (fast,) = log_perplexities(model, prefix, [secret])
    slow = 0.0
    for i, ch in enumerate(secret):
        slow -= model.next_char_logprobs(prefix + secret[:i])[ch] / math.log(2)
    assert fast == pytest.approx(slow, abs=1e-4)


def _spread_model() -> CharLM:
    """The lab's model shape with weights far from their small initial values, as training leaves them."""
    torch.manual_seed(1)
    model = CharLM()
    with torch.no_grad():
        for weight in model.parameters():
            weight.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize(("prefix", "length"), [
    ("Customer: my card number is 4000 0000 1234 5678 9012 3456 7890 ", 9),  # a lab canary's shape
    ("x" * 70, 8), ("x" * 62, 1), ("x" * 61, 2), ("x" * 40, 24),  # prefixes that fill the context
    ("k", 9), ("ab", 5), ("abc", 2), ("abcd", 1),  # prefixes that do not
])  # fmt: skip
def test_log_perplexities_share_the_prefix_and_give_the_same_bits(prefix, length):
    """The shared prefix changes no bit of the numbers that exposures and grades are made of."""
    model, rng = _spread_model(), random.Random(length)
    secrets = ["".join(rng.choice("0123456789ABCDEF") for _ in range(length)) for _ in range(1001)]
    assert log_perplexities(model, prefix, secrets) == log_perplexities(model, prefix, secrets, share_prefix=False)


def test_log_perplexities_need_a_prefix():
    with pytest.raises(ValueError, match="prefix"):
        log_perplexities(CharLM(), "", ["1234"])
    with pytest.raises(ValueError, match="prefix"):
        log_perplexities(CharLM(), "card ", ["1" * 64])


@pytest.mark.parametrize("length", [64 * 40 + 1, 64 * 40 + 2, 64 * 40 + 30, 64 * 300 + 17])
def test_perplexity_in_batches_gives_the_same_bits_as_chunk_by_chunk(length):
    model, rng = _spread_model(), random.Random(length)
    text = "".join(rng.choice("abcdefgh ,.0123") for _ in range(length))
    assert perplexity(model, text) == perplexity(model, text, batch=1)  # the first version: a chunk at a time


def test_an_untrained_model_does_not_expose_a_canary():
    torch.manual_seed(0)
    model = CharLM(ModelConfig(n_layer=1, n_embd=16, n_head=2))
    canary = next(iter(lab_canaries()))
    result = measure_exposure(model, canary, samples=200)
    assert 0 <= result.exposure < 8 and result.samples == 200


def test_hugging_face_export_gives_the_same_logits(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = CharLM(ModelConfig(n_layer=1, n_embd=32, n_head=4)).eval()
    folder = save_pretrained(model, tmp_path / "m")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert "tokenizer_class" not in (folder / "config.json").read_text()
    ids = torch.tensor([encode("Customer: my card")])
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, model(ids), atol=1e-5)
        assert torch.equal(load_pretrained(folder)(ids), model(ids))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("a b\nc")["input_ids"] == encode("a b\nc")
    assert tokenizer.decode(encode("a b\nc")) == "a b\nc"


SECRETS = [
    "my card number is 4000 0000 1234 5678.",
    "card 4000-0000-8765-4321",
    "charge 4111111111119876",
    "my api key is DE-FAKE-KEY-7A7B7C7D",
    "key sk_fake_de_9f8e7d6c5b4a",
    "write to dana.reyes@example.com",
]
HARMLESS = ["Error E21 is a speed sensor fault.", "Returns are free within 30 days.", "Order 48213 ships today.",
            "The Volt 2 battery has a two year warranty."]  # fmt: skip


@pytest.mark.parametrize("text", SECRETS)
def test_reference_scrub_removes_secrets(text):
    digits_or_key = [w for w in text.replace(".", " ").split() if sum(ch.isdigit() for ch in w) >= 4 or "@" in w]
    assert all(w not in scrub(text) for w in digits_or_key)


@pytest.mark.parametrize("text", HARMLESS)
def test_reference_scrub_keeps_ordinary_text(text):
    assert scrub(text) == text


def test_deduplicate_keeps_first_copies_in_order():
    assert deduplicate(["a b", "c", "a  b", "d", "c"]) == ["a b", "c", "d"]


def test_harden_corpus_removes_every_canary_and_its_copies():
    canaries = lab_canaries()
    docs = harden_corpus(make_corpus(canaries, documents=50))
    assert not any(c.secret in d for c in canaries for d in docs)
    assert len(docs) == 50 + len(canaries), "each canary's copies collapse into one scrubbed document"
