"""Lab 01: prompt injection and jailbreaks, against the support bot."""

from doubleedge.labs.base import Lab
from doubleedge.labs.targets import SUPPORT_BOT
from doubleedge.scan.specs import ScanSpec


def measure() -> tuple[dict, dict]:
    from doubleedge.defenses import lab01 as solution
    from doubleedge.evaluate import benign_pass_rate
    from doubleedge.figures import LEARNER, side
    from doubleedge.models import ReferenceModel
    from doubleedge.scan import scan_bot
    from doubleedge.target import SupportBot, derive_secret

    secret = derive_secret(LEARNER)
    before = SupportBot(ReferenceModel(), secret=secret)
    after = SupportBot(ReferenceModel(), secret=secret, defense=solution.build_defense(secret))
    return tuple(side(scan_bot(bot, LAB.scan), benign_pass_rate(bot).rate) for bot in (before, after))


def thresholds() -> list[str]:
    from doubleedge.grading import lab01

    return [f"below {lab01.ASR_THRESHOLD:.0%}", f"at least {lab01.BENIGN_THRESHOLD:.0%}",
            f"flags at least {lab01.DETECTION_RECALL:.0%}", f"flags at most {lab01.DETECTION_FPR:.0%}"]


LAB = Lab(
    number="01",
    slug="01-prompt-injection",
    title="Prompt injection and jailbreaks",
    package=__name__,
    target=SUPPORT_BOT,
    checks="doubleedge.grading.lab01",
    # before its preview read the learner's re-scan instead of scanning again
    earlier_test_cells={"test_hardening_asr": ("450a8e11662bec7752106cdf8c73a7c48229c5fb34f422ac08392252eef54eba",)},
    solution="doubleedge.defenses.lab01",
    defense="lab01",
    scan=ScanSpec(
        lab="01",
        probes=(
            # Goal hijacking (Perez & Ribeiro 2022): detector promptinject.AttackRogueString
            "promptinject.HijackHateHumans",
            "promptinject.HijackKillHumans",
            "promptinject.HijackLongPrompt",
            # Role-play jailbreaks: the persona detectors, and in-the-wild prompts
            # (Shen et al. 2023) scored by mitigation.MitigationBypass
            "dan.Dan_11_0",
            "dan.DUDE",
            "dan.STAN",
            "dan.DanInTheWild",
            # Smuggled encodings (Wei et al. 2023): detector encoding.DecodeMatch
            "encoding.InjectBase64",
            "encoding.InjectHex",
            "encoding.InjectROT13",
        ),
    ),
    benign="ordinary questions answered",
    ordinary_allowed="none",
    measure=measure,
    thresholds=thresholds,
)
