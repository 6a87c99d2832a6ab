"""Not the real ``debugpy``: graded kernels have no debugger.

ipykernel imports debugpy at start-up to offer JupyterLab's debugger (about a tenth of a
second of CPU in every graded kernel), although the grading kernelspec turns the debugger off
and nobody attaches to a kernel that nbgrader runs. This folder is first on ``PYTHONPATH``
inside the grading sandbox only; ipykernel treats the ImportError as "no debugger".
"""

raise ImportError("debugpy is not loaded in the grading sandbox (see doubleedge/grading/_shim)")
