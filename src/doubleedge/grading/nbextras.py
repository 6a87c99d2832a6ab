"""nbgrader add-ons that the grading course's nbgrader_config.py loads (see sandbox.py)."""

from __future__ import annotations

from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Integer

CUT_MARKER = "[grader: output of this cell cut at"


class CappedExecute(Execute):
    """nbgrader's Execute, keeping at most ``max_output_bytes`` of output per cell.

    Outputs are dropped as they arrive, so a kernel that prints gigabytes cannot fill
    the grader's memory or the feedback (LimitOutput only trims lines afterwards).
    """

    max_output_bytes = Integer(1024 * 1024, help="output kept per cell; the rest is dropped").tag(config=True)

    def output(self, outs: list[NotebookNode], msg: dict, display_id: str | None, cell_index: int):
        used = self._output_bytes.get(cell_index, 0)
        size = _size(msg.get("content", {}))
        if used + size > self.max_output_bytes:
            if used <= self.max_output_bytes:  # say so once
                outs.append(
                    new_output(
                        "stream",
                        name="stderr",
                        text=f"{CUT_MARKER} {self.max_output_bytes} bytes]\n",
                    )
                )
            self._output_bytes[cell_index] = self.max_output_bytes + 1
            return None
        self._output_bytes[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)

    def preprocess(self, nb: NotebookNode, resources: dict | None = None, km=None):
        self._doubleedge_output_bytes = {}
        return super().preprocess(nb, resources, km)

    @property
    def _output_bytes(self) -> dict[int, int]:
        if not hasattr(self, "_doubleedge_output_bytes"):
            self._doubleedge_output_bytes: dict[int, int] = {}
        return self._doubleedge_output_bytes


def _size(content: dict) -> int:
    """Characters in an output message's payload, without copying it."""
    total = len(content.get("text", "") or "")
    for value in (content.get("data") or {}).values():
        total += len(value) if isinstance(value, str) else len(str(value)[:1_000_000])
    total += sum(len(line) for line in content.get("traceback", []) or [])
    return total + len(str(content.get("evalue", "")))
