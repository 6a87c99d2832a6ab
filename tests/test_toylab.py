"""The toy lab (tests/fixtures/toylab) joins the course by discovery alone: no registry names it.
Its grading through the whole pipeline is tests/integration/test_toylab_grading.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doubleedge.labs import LABS

TOYLAB = Path(__file__).parent / "fixtures" / "toylab"


def run(*code_or_args: str, module: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOUBLEEDGE_LAB_PATH=str(TOYLAB))
    argv = [sys.executable, "-m", *code_or_args] if module else [sys.executable, "-c", *code_or_args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_toy_lab_is_found_only_where_the_lab_path_says():
    assert "99" not in LABS
    done = run("import json; from doubleedge.labs import LABS; print(json.dumps({n: l.slug for n, l in LABS.items()}))")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {**{n: lab.slug for n, lab in LABS.items()}, "99": "99-toy"}


def test_toy_lab_has_its_notebook_held_out_set_and_judge():
    done = run(
        "from doubleedge.labs import get_lab; from doubleedge.grading.judges import judge_for\n"
        "lab = get_lab('99'); judge = judge_for('99')\n"
        "print(lab.source_notebook.is_file(), lab.heldout_attacks.is_file(), callable(judge.judge), lab.label)"
    )
    assert done.stdout.split(maxsplit=3) == ["True", "True", "True", "99 Toy lab: shouting\n"], done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "--lab", "99"], "Lab 99's target is a function, not a chat"),
        (["serve", "--lab", "99"], "Lab 99's target is a function, not a chat"),
    ],
)
def test_cli_looks_the_toy_lab_up(args, message):
    done = run("doubleedge.cli", *args, module=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_package_that_declares_another_number_is_refused(tmp_path):
    package = tmp_path / "lab98_wrong"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from doubleedge.labs import Lab, NoChatTarget\n"
        "LAB = Lab(number='97', slug='97-wrong', title='Wrong', package=__name__, target=NoChatTarget('x'), checks='x')\n"
    )
    env = dict(os.environ, DOUBLEEDGE_LAB_PATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", "import doubleedge.labs"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "lab98_wrong declares Lab 97" in done.stderr
