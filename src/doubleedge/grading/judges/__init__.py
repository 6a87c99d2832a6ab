"""Each lab's judge: what the checker (authoritative.py) computes for one learner.

A lab package's ``judge`` module (``doubleedge.labs.labNN_slug.judge``) has

* ``baseline(workdir: Path) -> Path | None``: what every learner's checks share, built once
  per class: the report of the scan that the learner's scan answers are checked against (the
  unhardened target), Lab 07's attack model, or a folder (Lab 06's graded GGUF copies, bound
  read-only into each checker, which copies what the learner's code opens); ``None`` when the
  lab needs none;
* ``kernel_cache(folder: Path) -> None`` (optional): fills a learner kernel's cache folder
  (``$DOUBLEEDGE_CACHE``) with what the notebook computes from public data, so that
  autograding does not redo it for every learner (Lab 07's trained models);
* ``judge(j: Judging) -> None``: fills ``j.tests`` with a Check for every graded test
  cell of the lab (and ``j.metrics``/``j.attacks`` for the feedback), reading the
  learner's names through ``j.ns`` (remote.py). It never runs learner code itself.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from doubleedge.labs import get_lab


def judge_for(lab: str) -> ModuleType:
    """The judge of a discovered lab; every lab has one (tests/test_labs.py)."""
    return importlib.import_module(get_lab(lab).judge)
