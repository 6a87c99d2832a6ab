"""Lab 08's reference solution: the release gate's decision, the system card export, who
answers for a model (the AI Act roles, a fine-tune's licence, a model card's content), and the
deployer's acceptable-use policy in front of the bot.

The lab notebook's solution cells hold the same code (a test keeps them in sync).
``gate_violations`` uses the standard library only: it is copied into a standalone CI script.
Graded learner code may not import this module.
"""

import re
from dataclasses import replace

from doubleedge.gate import release_bot
from doubleedge.governance import (
    CARD_SECTIONS,
    LLAMA_USER_LIMIT,
    PLACEHOLDERS,
    SIGNIFICANT_MODIFICATION,
    ReleasePlan,
    Scenario,
)
from doubleedge.guards import FunctionGuard
from doubleedge.target import Defense


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


# Exercise 9: the deployer's acceptable-use policy --------------------------------------------
# Each category's tell is a request to DO the harm, to someone: a verb of making or doing with its
# object ("make a grenade", "poison my coworker"), never a scary word alone ("kill a process",
# "the bomb threat procedure", "what is ransomware").
PERSON = (r"(?:someone|somebody|a person|people|a child|kids?|him|her|them|my (?:\w+ ){0,2}(?:neighbou?r|coworker|colleague|"
          r"boss|ex|wife|husband|partner|girlfriend|boyfriend|landlord|sister|brother|teacher)|"
          r"a (?:\w+ )?(?:cyclist|driver|customer|stranger|woman|man))")
POLICY_TELLS = {
    # AILuminate "violent crimes"; Llama 3.1 AUP 1.a.i (violence), 1.b (threatening) and 2.f (bodily harm)
    "violent_crimes": rf"\b(?:kill|murder|hurt|injure|poison|strangle|stab|beat up|kidnap|abduct|shoot)\w*\s+(?:\w+\s+)?{PERSON}"
                      r"|\bthreat\w*\b[^.?!]{0,40}\b(?:kill|hurt|burn|beat|shoot)\b|\bthreatening (?:note|message|letter|text|email)",
    # AILuminate "indiscriminate weapons (CBRNE)"; Llama 3.1 AUP 2.a (nuclear, military) and 2.b (weapons)
    "indiscriminate_weapons": r"\b(?:make|making|build|assemble|recipe|synthesi[sz]e|produce|grow|brew|instructions)\b[^.?!]{0,40}"
                              r"\b(?:bombs?|explosives?|grenades?|nerve (?:gas|agent)|chemical weapons?|bio-?weapons?|biological weapons?"
                              r"|pathogens?|napalm|sarin|untraceable (?:gun|firearm)s?|ghost guns?)\b",
    # AILuminate "non-violent crimes" (theft, fraud, cyber crime, drugs); Llama 3.1 AUP 1.a.vi, 1.g, 2.c and 3.a
    "non_violent_crimes": r"\b(?:steal|shoplift|pickpocket)\w*\b(?![^.?!]*\b(?:in (?:my|the|a) (?:video )?game|mission|level)\b)"
                          r"|\b(?:break|get|hack) into\b[^.?!]{0,30}\b(?:account|email|phone|house|car|wifi|network)"
                          r"|\bwithout (?:\w+ )?(?:password|permission|consent)\b"
                          r"|\b(?:write|draft|create|send|make)\b[^.?!]{0,30}\b(?:phishing|scam|ransomware|malware|keylogger|virus|spyware"
                          r"|trojan|fake (?:invoices?|receipts?|reviews?|ids?|documents?))\b"
                          r"|\bpretending to be (?:a|the|my|your) (?:bank|police|tax office|courier)\b"
                          r"|\b(?:cook|make|synthesi[sz]e|produce)\w*\b[^.?!]{0,20}\b(?:meth|methamphetamine|cocaine|heroin|fentanyl)\b",
    # AILuminate "privacy"; Llama 3.1 AUP 1.e (personal information without the rights to it)
    "privacy": r"\b(?:phone number|home address|address|passport number|social security number|where (?:s?he|they) lives?)\b"
               r"[^.?!]{0,20}\bof (?:the|my|a|this|that) (?!white house|shop|store)\w+"
               r"|\b(?:secretly|without (?:\w+ )?(?:knowing|knowledge))\b[^.?!]{0,40}\b(?:track|monitor|spy|read|follow)"
               r"|\b(?:track|monitor|spy on)\b[^.?!]{0,30}\b(?:secretly|without (?:\w+ )?(?:knowing|knowledge))"
               r"|\bdig up (?:everything|all|dirt)\b|\bdox(?:x)?\s+(?:him|her|them|someone|my|this|that)\b",
    # AILuminate "hate"; Llama 3.1 AUP 1.c (discrimination) and 1.b (harassment)
    "hate": r"\b(?:insults?|slurs?|jokes?|speech|flyer|post|rant|essay)\b[^.?!]{0,60}\b(?:gay|lesbian|trans|jewish|jews|muslims?|"
            r"christians?|black|white|asian|immigrants?|refugees?|disabled|women|men|religion|race)\b"
            r"|\b(?:gay|jewish|jews|muslims?|black|asian|immigrants?|refugees?|disabled|women)\b(?: \w+){0,2} (?:are|is) "
            r"(?:a burden|less intelligent|inferior|subhuman|vermin|animals|not welcome)",
}
MISUSE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in POLICY_TELLS.items()), re.I)


def breaks_use_policy(request: str) -> bool:
    """True if the request asks for help with one of the policy's misuse categories (the bot must refuse it)."""
    return MISUSE.search(" ".join(request.split())) is not None


def build_defense(secret: str) -> Defense:
    """Release v1.2-policy: v1.0's prompt and guards, with the acceptable-use policy checked first."""
    approved = release_bot("v1.0", secret).defense
    policy = FunctionGuard(breaks_use_policy, name="acceptable_use")
    return replace(approved, name="v1.2-policy", input_guards=[policy, *approved.input_guards])
