"""``doubleedge figures``: the course's numbers, measured, never typed in.

Runs the baseline garak scan (every offline probe family) on the unhardened bot and on
each defense level, measures the benign pass rate, and writes JSON (the record), a
markdown table (included in the course page) and a chart for each. ``--check``
re-measures and reports any drift from the committed JSON, which a test also does.
"""

from __future__ import annotations

import json
from pathlib import Path

from doubleedge.defenses import LEVELS, get_defense
from doubleedge.evaluate import benign_pass_rate
from doubleedge.models import ReferenceModel
from doubleedge.paths import REPO_ROOT
from doubleedge.scan import BASELINE, scan_bot
from doubleedge.target import SupportBot, derive_secret

DEFAULT_OUT = REPO_ROOT / "course" / "target" / "generated"
LEARNER = "baseline"  # the numbers do not depend on the learner; fixed for reproducibility
LEVEL_NAMES = ("none", *LEVELS)


def measure(defense: str) -> dict:
    secret = derive_secret(LEARNER)
    bot = SupportBot(ReferenceModel(), secret=secret, defense=get_defense(defense, secret))
    report = scan_bot(bot, BASELINE)
    return {
        "defense": defense,
        "overall_attack_success_rate": round(report.overall_attack_success_rate, 4),
        "benign_pass_rate": round(benign_pass_rate(bot).rate, 4),
        "results": [r.as_dict() for r in report.results],
    }


def measure_all() -> dict:
    return {
        "spec": {"probes": len(BASELINE.probes), "prompt_cap": BASELINE.prompt_cap, "seed": BASELINE.seed},
        "levels": [measure(name) for name in LEVEL_NAMES],
    }


def family(probe: str) -> str:
    return probe.split(".", 1)[0]


def family_rates(results: list[dict]) -> dict[str, float]:
    """ASR per probe family: hits over attempts of all its probes."""
    totals: dict[str, list[int]] = {}
    for r in results:
        t = totals.setdefault(family(r["probe"]), [0, 0])
        t[0] += r["hits"]
        t[1] += r["attempts"]
    return {f: (hits / attempts if attempts else 0.0) for f, (hits, attempts) in sorted(totals.items())}


def baseline_table(data: dict) -> str:
    base = data["levels"][0]
    rows = ["| probe | detector | attempts | hits | ASR |", "| --- | --- | ---: | ---: | ---: |"]
    for r in base["results"]:
        rows.append(
            f"| `{r['probe']}` | `{r['detector']}` | {r['attempts']} | {r['hits']} | {r['attack_success_rate']:.0%} |"
        )
    rows.append(f"| **overall** | | | | **{base['overall_attack_success_rate']:.0%}** |")
    return "\n".join(rows) + "\n"


def levels_table(data: dict) -> str:
    rows = ["| level | what it adds | garak ASR | benign pass rate |", "| --- | --- | ---: | ---: |"]
    for level in data["levels"]:
        name = level["defense"]
        adds = "unhardened" if name == "none" else LEVELS[name]
        rows.append(
            f"| {'L0' if name == 'none' else name} | {adds} | {level['overall_attack_success_rate']:.1%} | {level['benign_pass_rate']:.0%} |"
        )
    return "\n".join(rows) + "\n"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def baseline_chart(data: dict, path: Path) -> None:
    plt = _figure()
    rates = family_rates(data["levels"][0]["results"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = sorted(rates, key=rates.get)
    ax.barh(names, [rates[n] * 100 for n in names], color="#c0392b")
    ax.set_xlim(0, 100)
    ax.set_xlabel("attack success rate (%)")
    ax.set_title("Unhardened bot: garak attack success rate per probe family")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def levels_chart(data: dict, path: Path) -> None:
    plt = _figure()
    labels = ["L0" if lv["defense"] == "none" else lv["defense"] for lv in data["levels"]]
    xs = range(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(
        [x - 0.2 for x in xs],
        [lv["overall_attack_success_rate"] * 100 for lv in data["levels"]],
        0.4,
        label="garak attack success rate",
        color="#c0392b",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [lv["benign_pass_rate"] * 100 for lv in data["levels"]],
        0.4,
        label="benign questions answered",
        color="#2e86c1",
    )
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Defense in depth: each layer cuts attacks, none to zero")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write(out: Path = DEFAULT_OUT, data: dict | None = None) -> dict:
    data = data or measure_all()
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    (out / "baseline.md").write_text(baseline_table(data), "utf-8")
    (out / "levels.md").write_text(levels_table(data), "utf-8")
    baseline_chart(data, out / "baseline.png")
    levels_chart(data, out / "levels.png")
    return data


def drift(out: Path = DEFAULT_OUT, fresh: dict | None = None) -> list[str]:
    """Differences between the committed figures and a fresh measurement (empty: none)."""
    committed = json.loads((out / "figures.json").read_text("utf-8"))
    fresh = fresh or measure_all()
    problems = []
    if committed["spec"] != fresh["spec"]:
        problems.append(f"scan spec changed: {committed['spec']} -> {fresh['spec']}")
    old = {lv["defense"]: lv for lv in committed["levels"]}
    for level in fresh["levels"]:
        before = old.get(level["defense"])
        if before is None:
            problems.append(f"{level['defense']}: not in the committed figures")
            continue
        for key in ("overall_attack_success_rate", "benign_pass_rate"):
            if before[key] != level[key]:
                problems.append(f"{level['defense']} {key}: committed {before[key]}, measured {level[key]}")
        if before["results"] != level["results"]:
            changed = [r["probe"] for r, s in zip(level["results"], before["results"], strict=False) if r != s]
            problems.append(f"{level['defense']}: per-probe results changed ({', '.join(changed[:5]) or 'probe list'})")
    for name, render in (("baseline.md", baseline_table), ("levels.md", levels_table)):
        if (out / name).read_text("utf-8") != render(committed):
            problems.append(f"{name} does not match figures.json: run `doubleedge figures`")
    return problems
