"""The judge API: what a lab's judge is given (:class:`Judging`) and must provide, for the checker
(checker.py) to compute one learner's authoritative score.

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
  learner's names through ``j.ns`` (remote.RemoteNamespace; ``j.ns.apply`` runs one of the
  helpers the lab registers in ``Lab.runner_helpers`` on a learner function, in the runner).
  It never runs learner code itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from doubleedge.grading.checks import Check
from doubleedge.grading.remote import RemoteError, RemoteNamespace, RunnerBroken, RunnerClient, keep_answering
from doubleedge.labs import get_lab
from doubleedge.target.bot import SupportBot

__all__ = ["Check", "Judging", "RemoteError", "RunnerBroken", "judge_for"]

T = TypeVar("T")


def judge_for(lab: str) -> ModuleType:
    """The judge of a discovered lab; every lab has one (tests/test_labs.py)."""
    return importlib.import_module(get_lab(lab).judge)


class Judging:
    """One learner's authoritative grading: the learner's names, and each test's Check.

    A test whose solution cell failed (or was skipped) fails with that cell's error; a
    check that raises fails with the reason, never a traceback (a learner value may break
    any check, and the reason reaches the learner).
    """

    def __init__(self, client: RunnerClient, errors: dict[str, str], learner: str, baseline: Path | None,
                 heldout: Path, shared: Path, sources: dict[str, str] | None = None) -> None:  # fmt: skip
        self.client, self.errors, self.learner = client, errors, learner
        self.baseline, self.heldout, self.shared = baseline, heldout, shared
        self.sources = sources or {}  # the learner's solution cells, as text (never run here)
        self.ns = RemoteNamespace(client)
        self.tests: dict[str, Check] = {}
        self.metrics: dict = {}
        self.attacks: dict = {}

    @property
    def ordinary(self) -> Path:
        """The held-out ordinary requests, kept beside the held-out attacks (labs with an over-blocking half)."""
        from doubleedge.labs.base import ordinary_set

        return ordinary_set(self.heldout)

    def attempt(self, test_id: str, needs: str, check: Callable[[], Check]) -> bool:
        if needs in self.errors:
            self.tests[test_id] = Check(False, f"cell '{needs}': {self.errors[needs]}")
            return False
        try:
            self.tests[test_id] = check()
            self.raise_if_broken()
        except (RunnerBroken, RemoteError) as exc:
            self.tests[test_id] = Check(False, str(exc))
        except NameError as exc:  # a name the exercise asks for is missing
            self.tests[test_id] = Check(False, f"{exc}: set it in cell '{needs}' (check the spelling)")
        except Exception as exc:
            self.tests[test_id] = Check(False, f"{type(exc).__name__}: {str(exc)[:200]}")
        return self.tests[test_id].passed

    def raise_if_broken(self) -> None:
        """Requests that failed quietly (garak retries and moves on) make the numbers meaningless."""
        if self.client.broken:
            raise RunnerBroken(self.client.broken)

    def measure(self, bot: SupportBot, evaluate: Callable[[SupportBot], T]) -> T:
        """``evaluate(bot)`` for a bot built on the learner's remote code. A message on which
        that code fails gets the blocked reply (see keep_answering); the failures then fail
        the test, so raising on attacks is never a way to pass."""
        failures = keep_answering(bot)
        measured = evaluate(bot)
        self.raise_if_broken()
        if failures:
            raise RemoteError(f"your defense failed on {len(failures)} messages: {failures[0]}")
        return measured

    def evaluate(self, tests: tuple[str, str], needs: str, measure: Callable[[], T],
                 checks: tuple[str, str] = ("asr_check", "benign_check")) -> T | None:  # fmt: skip
        """Two tests decided by one measurement (attacks stopped, ordinary use kept): ``measure()``
        runs once; each test is the result's check of that name; the second test shares the
        first's reason when there is no result. The result's metrics go to the feedback."""
        result = None

        def first() -> Check:
            nonlocal result
            measured = measure()
            self.raise_if_broken()
            result = measured
            return getattr(result, checks[0])()

        self.attempt(tests[0], needs, first)
        self.follow(tests[1], tests[0], result and getattr(result, checks[1]))
        if result is not None:
            self.metrics.update(result.metrics())
        return result

    def follow(self, test_id: str, after: str, check: Callable[[], Check] | None) -> None:
        """A test decided by the same computation as ``after``: its reason when that failed."""
        self.tests[test_id] = check() if check is not None else Check(False, self.tests[after].reason)

    def result(self) -> dict:
        return {
            "tests": {k: {"passed": v.passed, "reason": v.reason} for k, v in self.tests.items()},
            "metrics": self.metrics,
            "attacks": self.attacks,
        }
