"""Comparing two scans: the table and the before/after bar chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from doubleedge.scan.report import ScanReport


@dataclass(frozen=True)
class Change:
    probe: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


def compare(before: ScanReport, after: ScanReport) -> list[Change]:
    """Per-probe attack success rates before and after (probes missing on one side count as 0)."""
    b, a = before.by_probe(), after.by_probe()
    probes = sorted(set(b) | set(a))
    rate = lambda runs, p: runs[p].attack_success_rate if p in runs else 0.0  # noqa: E731
    return [Change(p, rate(b, p), rate(a, p)) for p in probes]


def percent(rate: float) -> str:
    """A rate as a percentage that never rounds a small non-zero rate to a round one (1.4%, not 1%)."""
    return f"{rate:.1%}" if 0 < rate < 0.1 else f"{rate:.0%}"


def plot_comparison(
    before: ScanReport, after: ScanReport, path: Path | str | None = None, labels: tuple[str, str] = ("before", "after")
):
    """A horizontal bar chart of ASR per probe. Saves to ``path`` if given; returns the figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")  # no display needed to write a file
    import matplotlib.pyplot as plt

    changes = compare(before, after)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(changes) + 1.5))
    ys = range(len(changes))
    # The y axis is inverted below: "before" sits above "after" in each pair, as in the legend.
    ax.barh([y - 0.2 for y in ys], [c.before * 100 for c in changes], height=0.4, label=labels[0], color="#c0392b")
    ax.barh([y + 0.2 for y in ys], [c.after * 100 for c in changes], height=0.4, label=labels[1], color="#2e86c1")
    ax.set_yticks(list(ys), [c.probe for c in changes])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("attack success rate (%)")
    ax.set_title(
        f"garak: overall {percent(before.overall_attack_success_rate)} -> {percent(after.overall_attack_success_rate)}",
        pad=24,
    )
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)  # above the bars, never on them
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
