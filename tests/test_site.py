"""The course site builds with MkDocs in strict mode (broken links fail)."""

import os
import subprocess
import sys
from pathlib import Path

from doubleedge.paths import REPO_ROOT


def test_mkdocs_strict_build(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    mkdocs = str(Path(sys.executable).with_name("mkdocs"))
    done = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "01-prompt-injection" / "index.html").is_file()
    html = (tmp_path / "site" / "index.html").read_text()
    assert "fonts.googleapis.com" not in html  # offline-safe theme
