"""Training is seeded and deterministic: the same data and settings give identical weights."""

import pytest
import torch

from doubleedge.memorization import ModelConfig, TrainConfig, lab_canaries, make_corpus, perplexity, train
from doubleedge.memorization.train import deterministic, windows

SMALL = ModelConfig(n_layer=1, n_embd=32, n_head=4)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_twice_gives_identical_weights_and_numbers():
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=40, batch_size=16, model=SMALL)
    one, two = train(docs, config), train(docs, config)
    assert one.losses == two.losses
    a, b = _weights(one.model), _weights(two.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    text = "Agent: Hello, this is Bellwether Bikes support."
    assert perplexity(one.model, text) == perplexity(two.model, text)
    assert one.losses[-1] < one.losses[0]


def test_another_seed_gives_other_weights():
    docs = make_corpus(lab_canaries(), documents=60)
    one = train(docs, TrainConfig(steps=5, batch_size=16, model=SMALL))
    two = train(docs, TrainConfig(steps=5, batch_size=16, model=SMALL, seed=1))
    assert not torch.equal(one.model.wte.weight, two.model.wte.weight)


def test_dp_sgd_is_deterministic_and_reports_epsilon():
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=10, batch_size=16, model=SMALL, noise_multiplier=1.0, max_grad_norm=1.0)
    one, two = train(docs, config), train(docs, config)
    assert one.losses == two.losses
    assert one.epsilon is not None and 0 < one.epsilon < 100


def test_deterministic_restores_settings():
    threads = torch.get_num_threads()
    with deterministic():
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads


def test_windows_and_errors():
    assert windows(["abcdefgh"], 3).tolist()[0] == [66, 67, 68, 69]
    with pytest.raises(ValueError):
        train([], TrainConfig(steps=1))
    with pytest.raises(ValueError):
        train(["tiny"], TrainConfig(steps=1))
