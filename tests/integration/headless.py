"""Headless Chromium for the browser tests: Debian's package, driven by Playwright.

``make test`` installs Chromium with apt (never ``playwright install``, which downloads a
browser). Importing this module from a test module skips that module when Chromium or the
playwright package is missing, with the reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "", shutil.which("chromium-headless-shell") or "")
     if p and os.access(p, os.X_OK)),
    None,
)  # fmt: skip
if CHROMIUM is None:
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; `make test` does it)",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

# No background traffic of Chromium's own: the tests assert that pages make no request off the machine.
ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
] + (["--no-sandbox"] if os.geteuid() == 0 else [])  # root (CI containers) cannot use Chromium's sandbox

# Where the browser tests leave screenshots for a person to look at: DOUBLEEDGE_SCREENSHOTS if set
# (pytest keeps only its last few tmp folders), else the folder a test names, else this one.
KEEP = Path(os.environ["DOUBLEEDGE_SCREENSHOTS"]) if os.environ.get("DOUBLEEDGE_SCREENSHOTS") else None
SCREENSHOTS = KEEP or Path(tempfile.gettempdir()) / "doubleedge-screenshots"


def screenshot(target, name: str, folder: Path | None = None) -> Path:  # a playwright Page or Locator
    """Save what a page or one element of it shows now as ``<folder>/<name>.png``."""
    folder = KEEP or folder or SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    target.screenshot(path=str(path))
    print(f"screenshot: {path}")  # pytest shows it with -s or when the test fails
    return path
