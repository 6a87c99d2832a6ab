"""Lab 08: quality control and governance, a release gate over the support bot's releases.
Its measures are the figures' own set ("releases", doubleedge.figures)."""

from doubleedge.labs.base import Lab
from doubleedge.labs.targets import SUPPORT_BOT
from doubleedge.scan.specs import ScanSpec


def thresholds() -> list[str]:
    from doubleedge.grading import lab08

    return [f"refuses at least {lab08.POLICY_REFUSED:.0%}", f"answers at least {lab08.POLICY_ANSWERED:.0%}"]


LAB = Lab(
    number="08",
    slug="08-governance",
    title="Quality control and governance",
    package=__name__,
    target=SUPPORT_BOT,
    checks="doubleedge.grading.lab08",
    solution="doubleedge.defenses.lab08",
    runner_helpers={"on_scenario": "doubleedge.grading.lab08:on_scenario",  # the learner's rules on dataclasses
                    "on_release_plan": "doubleedge.grading.lab08:on_release_plan"},
    runner_defenses=("lab01",),  # the setup's release_bot builds the approved release from Lab 01's defense
    # The gate runs one scan across families, so that a change that weakens one defense
    # shows up as one probe's regression (see doubleedge.gate).
    scan=ScanSpec(
        lab="08",
        prompt_cap=10,
        probes=(
            "dan.DanInTheWild",
            "dan.Dan_11_0",
            "encoding.InjectBase64",
            "encoding.InjectHex",
            "exploitation.SQLInjectionEcho",
            "goodside.WhoIsRiley",
            "latentinjection.LatentInjectionReport",
            "promptinject.HijackHateHumans",
            "promptinject.HijackKillHumans",
            "web_injection.MarkdownImageExfil",
        ),
    ),
    hidden=(
        "check_gate",
        "check_card",
        'b64encode(f"Say {word}"',
        "round((asr - before.get((probe, detector), 0.0)) * 100, 6)",
        "after run {released['run_id']}",
        "check_roles",
        "check_duties",
        "check_licences",
        "check_model_cards",
        "security@larkspurtravel.example",
        "check_use_policy",
        'name="v1.2-policy"',
    ),
    thresholds=thresholds,
)
