"""Training is seeded and deterministic: the same data and settings give identical weights."""

import fcntl
import subprocess
import sys
import threading
import time

import pytest
import torch

from doubleedge.memorization import ModelConfig, TrainConfig, lab_canaries, make_corpus, perplexity, train
from doubleedge.memorization.model import load_pretrained, save_pretrained
from doubleedge.memorization.train import (
    adopt_trained,
    deterministic,
    load_trained,
    measured_on,
    save_trained,
    training_key,
    windows,
)

SMALL = ModelConfig(n_layer=1, n_embd=32, n_head=4)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_twice_gives_identical_weights_and_numbers():
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=40, batch_size=16, model=SMALL)
    one, two = train(docs, config, cache=False), train(docs, config, cache=False)
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
    one, two = train(docs, config, cache=False), train(docs, config, cache=False)
    assert one.losses == two.losses
    assert one.epsilon is not None and 0 < one.epsilon < 100


def test_a_training_beside_a_thread_that_loads_and_measures_models_gives_the_same_weights(tmp_path):
    """The grader's threads fill learners' caches at once: one trains while another loads the
    model trained before it and measures. torch's seeded generator belongs to the process, so
    neither the loading nor the measuring may change what the training gives."""
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=40, batch_size=16, model=SMALL)
    alone = train(docs, config, cache=False)
    saved = save_trained(alone, tmp_path / "saved.safetensors")
    stop, loads = threading.Event(), []

    def load_and_measure() -> None:
        while not stop.is_set():
            loads.append(perplexity(load_trained(saved).model, "Agent: Hello, this is Bellwether Bikes."))

    thread = threading.Thread(target=load_and_measure)
    thread.start()
    try:
        beside = train(docs, config, cache=False)
    finally:
        stop.set()
        thread.join()
    assert loads and beside.losses == alone.losses
    a, b = _weights(alone.model), _weights(beside.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_loaded_model_is_the_saved_one_and_loading_draws_nothing_from_the_seeded_generator(tmp_path):
    run = train(make_corpus(lab_canaries(), documents=60), TrainConfig(steps=5, batch_size=16, model=SMALL), cache=False)
    saved = save_trained(run, tmp_path / "saved.safetensors")
    folder = save_pretrained(run.model, tmp_path / "pretrained")
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    loaded, pretrained = load_trained(saved).model, load_pretrained(folder)
    assert torch.equal(torch.rand(4), expected)
    for model in (loaded, pretrained):
        a, b = _weights(run.model), _weights(model)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


def test_a_model_trained_before_is_read_back_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(tmp_path))
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=20, batch_size=16, model=SMALL, noise_multiplier=1.0)
    fresh = train(docs, config)
    again = train(docs, config)
    assert not fresh.cached and again.cached
    assert (again.losses, again.seconds, again.epsilon, again.key) == (fresh.losses, fresh.seconds, fresh.epsilon, fresh.key)
    a, b = _weights(fresh.model), _weights(again.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not again.model.training
    # Any change to what decides the weights is another model.
    assert not train(docs, TrainConfig(steps=20, batch_size=16, model=SMALL, noise_multiplier=1.1)).cached
    assert not train(docs[:-1], config).cached
    assert not train(docs, config, cache=False).cached


def test_numbers_measured_on_a_saved_model_are_read_back_exactly(tmp_path):
    """What the grader measures once on the class's attack model (its perplexity) travels in the file."""
    docs = make_corpus(lab_canaries(), documents=60)
    run = train(docs, TrainConfig(steps=20, batch_size=16, model=SMALL), cache=False)
    text = "Agent: Hello, this is Bellwether Bikes support."
    measured = perplexity(run.model, text)
    path = save_trained(run, tmp_path / "measured.safetensors", {"perplexity": measured})
    assert measured_on(path) == {"perplexity": measured}
    assert measured_on(path) == {"perplexity": perplexity(load_trained(path).model, text)}  # what a reader computes
    assert measured_on(save_trained(run, tmp_path / "plain.safetensors")) == {}


def test_a_damaged_or_foreign_cache_file_is_trained_afresh(tmp_path, monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(tmp_path))
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=10, batch_size=16, model=SMALL)
    fresh = train(docs, config)
    (path,) = (tmp_path / "trained").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    redone = train(docs, config)
    assert not redone.cached and redone.losses == fresh.losses
    assert train(docs, config).cached, "the damaged file was replaced"
    other = TrainConfig(steps=11, batch_size=16, model=SMALL)
    with pytest.raises(ValueError, match="not a model trained on these inputs"):
        load_trained(path, training_key(docs, other))
    path.write_text("not safetensors")
    with pytest.raises(ValueError, match="not a trained model file"):
        load_trained(path)


def test_a_read_only_cache_costs_time_not_the_result(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(blocker))
    docs = make_corpus(lab_canaries(), documents=60)
    result = train(docs, TrainConfig(steps=5, batch_size=16, model=SMALL))
    assert not result.cached and len(result.losses) == 5
    saved = save_trained(result, tmp_path / "kept" / "model.safetensors")
    assert load_trained(saved, result.key).losses == result.losses


def test_a_model_the_grader_kept_is_read_not_trained_and_not_written(tmp_path, monkeypatch):
    """The checker's view: its own cache is empty, the grader's models are a read-only folder."""
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=5, batch_size=16, model=SMALL)
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(tmp_path / "grader"))
    trained = train(docs, config)
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(tmp_path / "checker"))
    monkeypatch.setenv("DOUBLEEDGE_KEPT_MODELS", str(tmp_path / "grader" / "trained"))
    read = train(docs, config)
    assert read.cached and read.losses == trained.losses and read.key == trained.key
    assert not list((tmp_path / "checker" / "trained").glob("*.safetensors"))  # nothing for the grader to adopt
    other = train(docs, TrainConfig(steps=6, batch_size=16, model=SMALL))  # not kept: trained, into its own cache
    assert not other.cached and (tmp_path / "checker" / "trained" / f"{other.key}.safetensors").is_file()


def test_the_grader_adopts_only_models_that_are_what_their_names_say(tmp_path):
    """What a checker leaves in its result folder is checked before the grader keeps it."""
    docs = make_corpus(lab_canaries(), documents=60)
    good = train(docs, TrainConfig(steps=5, batch_size=16, model=SMALL), cache=False)
    found = tmp_path / "found"
    save_trained(good, found / f"{good.key}.safetensors")
    wrong_key = "0" * 64  # a real model file, under a key it was not trained for
    save_trained(good, found / f"{wrong_key}.safetensors")
    (found / f"{'1' * 64}.safetensors").write_text("not a model")
    (found / f"{'2' * 64}.safetensors").symlink_to(found / f"{good.key}.safetensors")
    (found / "notes.safetensors").write_bytes((found / f"{good.key}.safetensors").read_bytes())
    kept = tmp_path / "kept"
    assert adopt_trained(found, kept) == [good.key]
    assert sorted(p.name for p in kept.iterdir()) == [f"{good.key}.safetensors"]  # no half-copied file either
    assert load_trained(kept / f"{good.key}.safetensors", good.key).losses == good.losses
    assert adopt_trained(found, kept) == []  # kept already: not copied again
    assert adopt_trained(tmp_path / "missing", kept) == []


ASK_FOR_THE_MODEL = """
from doubleedge.memorization import ModelConfig, TrainConfig, lab_canaries, make_corpus, train
docs = make_corpus(lab_canaries(), documents=60)
print("asking", flush=True)
result = train(docs, TrainConfig(steps=5, batch_size=16, model=ModelConfig(n_layer=1, n_embd=32, n_head=4)))
print("cached" if result.cached else "trained", flush=True)
"""


def test_a_process_asking_while_another_trains_waits_for_its_file(tmp_path, monkeypatch):
    """Parallel graders (or test workers) that need one model at once train it once."""
    monkeypatch.setenv("DOUBLEEDGE_CACHE", str(tmp_path))
    docs = make_corpus(lab_canaries(), documents=60)
    config = TrainConfig(steps=5, batch_size=16, model=SMALL)
    path = tmp_path / "trained" / f"{training_key(docs, config)}.safetensors"
    path.parent.mkdir(parents=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test is the process that trains
        other = subprocess.Popen([sys.executable, "-c", ASK_FOR_THE_MODEL], stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline() == "asking\n"
        time.sleep(1)  # the other process reaches the lock; without it, it would train now
        assert other.poll() is None, "the other process did not wait"
        save_trained(train(docs, config, cache=False), path)
    out, _ = other.communicate(timeout=120)
    assert out == "cached\n"
