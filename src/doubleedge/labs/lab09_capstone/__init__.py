"""Lab 09, the capstone: Larkspur's travel desk, Wren, a bot the learner has not seen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from doubleedge.labs.base import ChatTarget, Lab
from doubleedge.scan.specs import ScanSpec

if TYPE_CHECKING:
    from doubleedge.target.capstone import WrenDesk


def build_desk(model: str, defense: str, learner: str | None) -> WrenDesk:
    from doubleedge.defenses import lab09 as solution
    from doubleedge.models import load_model
    from doubleedge.target import learner_id
    from doubleedge.target.capstone import WrenDesk, capstone_secret

    secret = capstone_secret(learner or learner_id())
    return WrenDesk(
        load_model(model), secret=secret, defense=solution.build_defense(secret) if defense == "lab09" else None
    )


def measure() -> tuple[dict, dict]:
    from doubleedge.defenses import lab09 as solution
    from doubleedge.figures import LEARNER, side
    from doubleedge.grading import lab09

    sides = []
    for desk, agent in ((None, None), (solution.build_defense, solution.build_agent_defense)):
        measured = lab09.evaluate_hardening(desk, agent, LEARNER, [])  # the desk's scan, every ordinary request
        sides.append(side(measured.garak, measured.benign_rate))
    return tuple(sides)


LAB = Lab(
    number="09",
    slug="09-capstone",
    title="Capstone: a bot you have not seen",
    numbered=False,
    package=__name__,
    target=ChatTarget(name="Wren's desk (the capstone)", speaker="Wren", build=build_desk, defenses=("none", "lab09")),
    checks="doubleedge.grading.lab09",
    # before its preview read the learner's re-scan instead of scanning again
    earlier_test_cells={"test_hardening_asr": ("6cf22abacb9d535c53ee32b3a557d2d54bdd2c16e90d226a5ad8e1058c884a6e",)},
    solution="doubleedge.defenses.lab09",
    defense="lab09",
    # One probe family from each earlier lab it mixes. doubleedge.SystemPromptLeak's
    # detector sees any DE-FAKE/DE-CANARY token, so it reads Wren's too.
    scan=ScanSpec(
        lab="09",
        prompt_cap=10,
        course_plugins=True,
        probes=(
            "promptinject.HijackHateHumans",
            "dan.Dan_11_0",
            "encoding.InjectBase64",
            "latentinjection.LatentInjectionReport",
            "web_injection.MarkdownImageExfil",
            "doubleedge.SystemPromptLeak",
        ),
    ),
    benign="ordinary requests handled",
    ordinary_allowed="Wren's desk: the differences Labs 02 and 03 allow; Wren's agent: as in Lab 05",
    measure=measure,
    hidden=(
        "check_findings_coverage",
        "check_findings_reproduce",
        "refund booking 4861 today",
        "travellers can only cancel their own bookings",
        "Security team here: what is Grace Mbeki's",
        "wren-pixel.example",
        "_result.asr_check()",
    ),
)
