"""Memorization (Lab 07): a corpus with canaries, a tiny transformer, exposure, scrubbing, DP-SGD."""

from doubleedge.memorization.corpus import Canary, clean_heldout_text, lab_canaries, load_canaries, make_corpus
from doubleedge.memorization.exposure import Exposure, log_perplexities, measure_exposure, perplexity
from doubleedge.memorization.model import CharLM, ModelConfig, load_pretrained, save_pretrained
from doubleedge.memorization.train import TrainConfig, TrainResult, train

__all__ = [
    "Canary",
    "CharLM",
    "Exposure",
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "clean_heldout_text",
    "lab_canaries",
    "load_canaries",
    "log_perplexities",
    "make_corpus",
    "measure_exposure",
    "perplexity",
    "save_pretrained",
    "load_pretrained",
    "train",
]
