"""Progress bars for long work in a learner's notebook (garak scans, Lab 07's training).

Inside a Jupyter kernel they are tqdm's notebook bars (an ipywidgets progress bar that
JupyterLab draws); anywhere else (a terminal, the grader, tests) there is no bar at all,
so nothing changes what those print. A graded kernel has none either (``BARS_ENV``): nobody
watches it, and each bar cost it and the grader a widget message per prompt.
"""

from __future__ import annotations

import os
import sys

BARS_ENV = "DOUBLEEDGE_PROGRESS_BARS"
OFF = "off"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not in plain Python, nor in IPython on a terminal)."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def notebook_bar(total: int | None, description: str, unit: str = "it"):  # tqdm.notebook.tqdm
    """tqdm's notebook bar (``update(n)``, ``set_postfix_str(note)``, ``close()``); None outside a
    notebook, and in a kernel run with ``DOUBLEEDGE_PROGRESS_BARS=off``."""
    if not in_notebook() or os.environ.get(BARS_ENV) == OFF:
        return None
    from tqdm.notebook import tqdm

    return tqdm(total=total, desc=description, unit=unit, leave=True)
