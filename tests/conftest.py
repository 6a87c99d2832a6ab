"""Shared fixtures for the unit tests."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from doubleedge.models import ReferenceModel
from doubleedge.target import SupportBot

FAKE_SECRET = "DE-FAKE-1234-ABCD"


def pytest_configure(config: pytest.Config) -> None:
    """One fresh kit cache (trained models, measured figures) per test run: the run's tests and
    the processes they start share it, so Lab 07's models are trained once, and nothing is
    carried over from an earlier run."""
    if "DOUBLEEDGE_CACHE" not in os.environ:
        config._doubleedge_cache = tempfile.mkdtemp(prefix="doubleedge-test-cache-")
        os.environ["DOUBLEEDGE_CACHE"] = config._doubleedge_cache


def pytest_unconfigure(config: pytest.Config) -> None:
    if folder := getattr(config, "_doubleedge_cache", None):
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("DOUBLEEDGE_CACHE", None)


# The module split into many units below: queued first, so that the workers share out its long
# units and end together, rather than one worker starting a long class when the others are done.
SPLIT_FIRST = ("tests/grading/test_gaming.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in SPLIT_FIRST)  # stable: order kept within


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` keeps a module's tests on one worker, so that its shared fixtures run
    once. One module holds most of the suite's time in units that share nothing: the gaming module
    grades one class per lab, lazily (a lab is its unit); so those spread over the workers instead
    of queueing on one."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection's order: SPLIT_FIRST's units first

    class SplitHeavyModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope.endswith("/test_gaming.py"):
                lab = re.search(r"\[(?:lab)?(\d\d)\b", nodeid)
                return f"{scope}::lab{lab.group(1) if lab else '01'}"
            return scope

    return SplitHeavyModules(config, log)


@pytest.fixture
def secret() -> str:
    """A fixed, clearly fake staff code, so expected replies can be written out."""
    return FAKE_SECRET


@pytest.fixture
def bot(secret: str) -> SupportBot:
    """The unhardened support bot on the reference model."""
    return SupportBot(ReferenceModel(), secret=secret)


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], object]) -> object:
    """``build(folder)``'s JSON result, built once per test run for every test worker: the first
    to ask builds it in the run's own folder (shared by the workers of one run, never by two
    runs) under a lock; the others wait and read it."""
    run = tmp_path_factory.getbasetemp()
    folder = (run.parent if os.environ.get("PYTEST_XDIST_WORKER") else run) / "once" / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = folder / "built.json"
        if not built.is_file():
            built.write_text(json.dumps(build(folder)))
        return json.loads(built.read_text())


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> tuple[Path, Path]:
    """(generated content, built site): ``site_content.generate`` then ``mkdocs build --strict``,
    once per test run for every module that reads the built site. The build must succeed."""
    from doubleedge import site_content
    from doubleedge.paths import REPO_ROOT

    def build(folder: Path) -> list[str]:
        generated = site_content.generate(cache=folder / "cache")
        mkdocs = str(Path(sys.executable).with_name("mkdocs"))
        done = subprocess.run([mkdocs, "build", "--strict", "-d", str(folder / "site")], cwd=REPO_ROOT,
                              capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
                              timeout=900)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return [str(generated), str(folder / "site")]

    generated, site = once_per_run(tmp_path_factory, "site", build)
    return Path(generated), Path(site)


@pytest.fixture(scope="session")
def class_baseline(tmp_path_factory):
    """``class_baseline(lab)``: the lab's baseline (``pipeline.baseline_report``: its scan of the
    unhardened target, Lab 06's graded model files, Lab 07's attack model), built once per test run
    as grading builds it once per class, and shared by every module that grades the lab, on every
    test worker. It depends on the lab and the course key only, so it is kept by both (a module may
    set its own key)."""
    import hashlib

    from doubleedge.grading.pipeline import baseline_report
    from doubleedge.labs import get_lab
    from doubleedge.target.secrets import course_key

    def baseline(lab: str) -> Path | None:
        def build(folder: Path) -> str | None:
            (folder / "work").mkdir(exist_ok=True)
            path = baseline_report(get_lab(lab), folder / "work")
            return str(path) if path else None

        key = hashlib.sha256(course_key().encode()).hexdigest()[:12]
        path = once_per_run(tmp_path_factory, f"baseline-{lab}-{key}", build)
        return Path(path) if path else None

    return baseline
