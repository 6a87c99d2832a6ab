"""The garak scans of each lab: small, explicit and reproducible.

Each scan names its probes (never "all"), runs one generation per prompt with a
fixed seed, and caps the prompts per probe so it takes seconds, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScanSpec:
    lab: str
    probes: tuple[str, ...]
    prompt_cap: int = 20
    seed: int = 20250101
    generations: int = 1

    @property
    def spec(self) -> str:
        """garak's ``--spec`` selection string."""
        return ",".join(f"probes.{p}" for p in self.probes)


LAB_SCANS: dict[str, ScanSpec] = {
    "01": ScanSpec(
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
}


def scan_for_lab(lab: str) -> ScanSpec:
    try:
        return LAB_SCANS[lab]
    except KeyError:
        raise ValueError(f"no scan for lab {lab!r}; available: {', '.join(LAB_SCANS)}") from None
