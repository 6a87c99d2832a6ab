"""Lab 08's reference solution: the release gate's decision and the system card export.

The lab notebook's solution cells hold the same code (a test keeps them in sync).
Standard library only: ``gate_violations`` is copied into a standalone CI script.
Graded learner code may not import this module.
"""


def gate_violations(baseline: dict, candidate: dict, config: dict) -> list[str]:
    """Why the candidate may not ship; an empty list means it may.

    Changes are in percentage points, rounded to 6 decimals (so float noise such as
    1.0 - 0.98 = 0.0200...018 counts as exactly 2 points); a change equal to the
    tolerance passes. Whatever did not run (a probe, a detector, the benign set) fails.
    """
    violations = []
    for side, m in (("baseline", baseline), ("candidate", candidate)):
        if m.get("scan") != config["scan"]:
            violations.append(f"the {side} was measured with scan {m.get('scan')!r}, the gate needs {config['scan']!r}")

    def rates(m: dict) -> dict:
        return {(r["probe"], r["detector"]): r["asr"] for r in m.get("results", []) if r.get("attempts", 0) > 0}

    before, after = rates(baseline), rates(candidate)
    for probe, detector in sorted(before.keys() - after.keys()):
        violations.append(f"{probe} ({detector}) did not run on the candidate")
    per_probe = config.get("probe_tolerance_pp", {})
    for (probe, detector), asr in sorted(after.items()):
        rise = round((asr - before.get((probe, detector), 0.0)) * 100, 6)
        tolerance = per_probe.get(probe, config["asr_tolerance_pp"])
        if rise > tolerance:
            violations.append(f"{probe} ({detector}): attack success rate up {rise:.1f} points (tolerance {tolerance})")
    if not isinstance(candidate.get("benign_pass_rate"), (int, float)):
        violations.append("the candidate has no benign pass rate")
    else:
        drop = round((baseline["benign_pass_rate"] - candidate["benign_pass_rate"]) * 100, 6)
        if drop > config["benign_tolerance_pp"]:
            violations.append(f"benign pass rate down {drop:.1f} points (tolerance {config['benign_tolerance_pp']})")
    return violations


def system_card(summary: dict) -> str:
    """A markdown system card / red-team report from two measurements (before and after hardening)."""
    found, released = summary["found"], summary["released"]

    def pct(rate: float) -> str:
        return f"{rate:.1%}"

    after = {(r["probe"], r["detector"]): r["asr"] for r in released["results"]}
    lines = [f"# System card: {summary['system']}", "", f"Model: {summary['model']}.", ""]
    lines += ["## Risks found", ""]
    risky = sorted({r["probe"] for r in found["results"] if r["asr"] > 0})
    lines += [f"- {p}: up to {pct(max(r['asr'] for r in found['results'] if r['probe'] == p))} of attacks succeeded"
              for p in risky] or ["- none observed by this scan"]  # fmt: skip
    lines += ["", "## Evidence", ""]
    lines += [
        f"garak scan {found['scan']}: before hardening run {found['run_id']}, after run {released['run_id']}.",
        "",
    ]
    lines += ["| probe | detector | ASR before | ASR after |", "|---|---|---|---|"]
    for r in found["results"]:
        lines.append(
            f"| {r['probe']} | {r['detector']} | {pct(r['asr'])} | {pct(after[(r['probe'], r['detector'])])} |"
        )
    lines += ["", "## Mitigations", ""] + [f"- {m}" for m in summary["mitigations"]]
    lines += ["", "## Residual risk", ""]
    residual = [r for r in released["results"] if r["asr"] > 0]
    lines += [f"- {r['probe']} ({r['detector']}): {pct(r['asr'])} of attacks still succeed" for r in residual]
    if not residual:
        lines.append("- no attack in this scan succeeded after hardening; the scan covers only its probes")
    lines.append(f"- benign pass rate after hardening: {pct(released['benign_pass_rate'])}")
    return "\n".join(lines) + "\n"
