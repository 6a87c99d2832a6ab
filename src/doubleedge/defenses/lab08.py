"""Lab 08's reference solution: the release gate's decision, the system card export, and
who answers for a model (the AI Act roles, a fine-tune's licence, a model card's content).

The lab notebook's solution cells hold the same code (a test keeps them in sync).
Standard library only: ``gate_violations`` is copied into a standalone CI script.
Graded learner code may not import this module.
"""

import re

from doubleedge.governance import (
    CARD_SECTIONS,
    LLAMA_USER_LIMIT,
    PLACEHOLDERS,
    SIGNIFICANT_MODIFICATION,
    ReleasePlan,
    Scenario,
)


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


def ai_act_roles(scenario: Scenario) -> set[str]:
    """The organisation's roles for the AI system under the AI Act: "provider", "deployer", both or none."""
    if not scenario.reaches_eu:
        return set()
    roles = set()
    if scenario.develops_system and scenario.own_name:  # Article 3(3)
        roles.add("provider")
    if scenario.substantial_modification or (scenario.high_risk and scenario.own_name):  # Article 25(1)
        roles.add("provider")
    if scenario.uses_system and not scenario.personal_use:  # Article 3(4)
        roles.add("deployer")
    return roles


def gpai_duties(scenario: Scenario) -> set[str]:
    """The Article 53(1) duties the organisation owes as a general-purpose AI model's provider (none if it is not one)."""
    modifies = scenario.modification_compute > SIGNIFICANT_MODIFICATION
    if not (scenario.reaches_eu and scenario.releases_model and (scenario.trains_model or modifies)):
        return set()
    duties = {"copyright_policy", "training_summary"}
    if not scenario.open_source or scenario.systemic_risk:  # Article 53(2): the open-source exemption
        duties |= {"technical_documentation", "downstream_information"}
    return duties


def licence_problems(plan: ReleasePlan) -> set[str]:
    """The base licence's conditions that the plan leaves unmet (empty: the plan is allowed)."""
    licence, problems = plan.base_licence, set()
    if plan.releases_weights:  # every licence here: its text and the notices go with the weights
        problems |= {name for name, kept in (("licence_text", plan.includes_licence), ("notices", plan.keeps_notices))
                     if not kept}  # fmt: skip
        if licence in ("Apache-2.0", "CC-BY-NC-4.0") and not plan.states_changes:  # Apache 4(b), CC 3(a)(1)(B)
            problems.add("modification_notice")
    if licence == "Llama-3.1-Community":  # section 1.b.i (branding and name) and section 2 (large platforms)
        if (plan.releases_weights or plan.serves_model) and not plan.shows_built_with_llama:
            problems.add("built_with_llama")
        if (plan.releases_weights or plan.serves_model) and not plan.name_starts_with_llama:
            problems.add("llama_name")
        if plan.monthly_active_users > LLAMA_USER_LIMIT:
            problems.add("meta_licence")
    if licence == "CC-BY-NC-4.0" and plan.commercial:
        problems.add("non_commercial")
    return problems


def missing_card_sections(card: str) -> list[str]:
    """The course's required model-card sections (CARD_SECTIONS) that ``card`` lacks or left as a placeholder."""
    text = re.sub(r"<!--.*?-->", "", card, flags=re.S)
    found = set()
    front = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    if front and re.search(r"^license:[ \t]*\S", front.group(1), flags=re.M):
        found.add("license")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"(#{1,6})\s+(.*)$", line)
        if not heading:
            continue
        level, title = len(heading.group(1)), " ".join(heading.group(2).strip().strip("#:").lower().split())
        body = []
        for after in lines[i + 1 :]:
            deeper = re.match(r"(#{1,6})\s", after)
            if deeper and len(deeper.group(1)) <= level:
                break
            if not deeper and after.strip() and not any(p in after.lower() for p in PLACEHOLDERS):
                body.append(after)
        found |= {name for name, titles in CARD_SECTIONS.items() if title in titles and body}
    return [name for name in CARD_SECTIONS if name not in found]
