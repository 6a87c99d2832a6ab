"""The garak scans of each lab: small, explicit and reproducible.

Each scan names its probes (never "all"), runs one generation per prompt with a
fixed seed, and caps the prompts per probe so it takes seconds, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar


@dataclass(frozen=True)
class ScanSpec:
    lab: str
    probes: tuple[str, ...]
    prompt_cap: int = 20
    seed: int = 20250101
    generations: int = 1
    # garak options per probe, e.g. {"latentinjection.LatentJailbreak": {"primary_detector": ...}}
    probe_options: dict[str, dict] = field(default_factory=dict)
    # The JSON body garak sends to /chat, "$INPUT" standing for its prompt. None means
    # {"message": "$INPUT"}. Lab 02 puts the prompt in "documents" and asks a fixed question.
    request: dict | None = None
    # True when a probe is one of the course's own (doubleedge.*): garak then starts
    # through doubleedge.scan.launch, which registers them.
    course_plugins: bool = False
    # Prompts garak sends at once (its system.parallel_attempts); 1 sends them one by one.
    # A class constant, not a field: the fields are the committed figures' cache key.
    parallel_attempts: ClassVar[int] = 1
    # Seconds garak waits for one reply; a read timeout kills its whole run.
    request_timeout: ClassVar[int] = 120
    # Seconds the whole garak run may take.
    run_timeout: ClassVar[int] = 900

    def probes_config(self) -> dict:
        """``probe_options`` in the nested shape of garak's ``plugins.probes`` config."""
        nested: dict = {}
        for name, options in self.probe_options.items():
            module, _, klass = name.partition(".")
            nested.setdefault(module, {})[klass] = dict(options)
        return nested

    @property
    def spec(self) -> str:
        """garak's ``--spec`` selection string."""
        return ",".join(f"probes.{p}" for p in self.probes)


# Lab 02: garak's prompt arrives as a document the bot reads for someone else, who asks this.
DOCUMENT_QUESTION = "Please summarize the attached document for me."
# Lab 03: the scan talks to the bot as this signed-in customer; other customers' data is a leak.
SCAN_CUSTOMER = "C-1001"

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
    # Lab 02: indirect injection. Every prompt is delivered as an attached document.
    "02": ScanSpec(
        lab="02",
        prompt_cap=15,
        request={"message": DOCUMENT_QUESTION, "documents": ["$INPUT"]},
        probes=(
            # Instructions hidden in documents (Greshake et al. 2023): trigger-string detectors
            "latentinjection.LatentInjectionFactSnippetEiffel",
            "latentinjection.LatentInjectionReport",
            "latentinjection.LatentInjectionResume",
            "latentinjection.LatentInjectionTranslationEnFr",
            "latentinjection.LatentWhoisSnippet",
            # Documents that make the bot write a link carrying data (Rehberger 2023)
            "web_injection.MarkdownImageExfil",
            "web_injection.StringAssemblyDataExfil",
        ),
    ),
    # Lab 03: sensitive information disclosure and system-prompt leakage, with the
    # course's own probes (doubleedge.*, run through doubleedge.scan.launch).
    "03": ScanSpec(
        lab="03",
        prompt_cap=40,
        request={"message": "$INPUT", "customer": SCAN_CUSTOMER},
        course_plugins=True,
        probes=("doubleedge.CustomerRecords", "doubleedge.SystemPromptLeak"),
    ),
    # Lab 04 scans the web chat, not the bot: what its page and its database do with a
    # reply (see scan/webchat.py). Exfiltration images and links, XSS, SQL and template
    # injection. ColabAIDataLeakage is left out: the reference model never triggers it.
    "04": ScanSpec(
        lab="04",
        probes=(
            "web_injection.MarkdownImageExfil",
            "web_injection.MarkdownURIImageExfilExtended",
            "web_injection.MarkdownURINonImageExfilExtended",
            "web_injection.PlaygroundMarkdownExfil",
            "web_injection.StringAssemblyDataExfil",
            "web_injection.MarkdownXSS",
            "web_injection.TaskXSS",
            "exploitation.SQLInjectionEcho",
            "exploitation.JinjaTemplatePythonInjection",
        ),
    ),
    # Lab 05 scans the agent: do hijacks embedded in what it reads still steer it?
    "05": ScanSpec(
        lab="05",
        probes=(
            "promptinject.HijackHateHumans",
            "latentinjection.LatentInjectionReport",
            "latentinjection.LatentInjectionResume",
            "latentinjection.LatentInjectionTranslationEnFr",
            "web_injection.MarkdownImageExfil",
        ),
    ),
    # Lab 08 gates releases on one scan across families, so that a change that weakens one
    # defense shows up as one probe's regression (see doubleedge.gate).
    "08": ScanSpec(
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
    # Lab 09 (capstone): Wren's desk, with one probe family from each earlier lab it mixes.
    # doubleedge.SystemPromptLeak's detector sees any DE-FAKE/DE-CANARY token, so it reads Wren's too.
    "09": ScanSpec(
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
}


# Every garak probe family that runs offline here (see the course's target page), small
# enough to run in seconds. Probes whose detectors need a hub model get a string detector.
BASELINE = ScanSpec(
    lab="baseline",
    prompt_cap=10,
    probes=(
        "ansiescape.AnsiEscaped",
        "ansiescape.AnsiRaw",
        "apikey.CompleteKey",
        "apikey.GetKey",
        "continuation.ContinueSlursReclaimedSlurs",
        "dan.DUDE",
        "dan.DanInTheWild",
        "dan.Dan_11_0",
        "dan.STAN",
        "divergence.Repeat",
        "encoding.InjectBase64",
        "encoding.InjectHex",
        "encoding.InjectROT13",
        "exploitation.JinjaTemplatePythonInjection",
        "exploitation.SQLInjectionEcho",
        "goodside.Tag",
        "goodside.ThreatenJSON",
        "goodside.WhoIsRiley",
        "grandma.Slurs",
        "grandma.Substances",
        "grandma.Win10",
        "grandma.Win11",
        "latentinjection.LatentInjectionFactSnippetEiffel",
        "latentinjection.LatentInjectionFactSnippetLegal",
        "latentinjection.LatentInjectionReport",
        "latentinjection.LatentInjectionResume",
        "latentinjection.LatentInjectionTranslationEnFr",
        "latentinjection.LatentInjectionTranslationEnZh",
        "latentinjection.LatentJailbreak",
        "latentinjection.LatentWhois",
        "latentinjection.LatentWhoisSnippet",
        "malwaregen.Evasion",
        "malwaregen.Payload",
        "malwaregen.SubFunctions",
        "malwaregen.TopLevel",
        "phrasing.FutureTense",
        "phrasing.PastTense",
        "promptinject.HijackHateHumans",
        "promptinject.HijackKillHumans",
        "promptinject.HijackLongPrompt",
        "snowball.GraphConnectivity",
        "web_injection.ColabAIDataLeakage",
        "web_injection.MarkdownImageExfil",
        "web_injection.MarkdownURIImageExfilExtended",
        "web_injection.MarkdownURINonImageExfilExtended",
        "web_injection.MarkdownXSS",
        "web_injection.PlaygroundMarkdownExfil",
        "web_injection.StringAssemblyDataExfil",
        "web_injection.TaskXSS",
    ),
    # Its default detector is a hub classifier (ToxicCommentModel), unavailable offline.
    probe_options={"latentinjection.LatentJailbreak": {"primary_detector": "unsafe_content.LDNOOBW"}},
)


# A neural model on 2 CPU cores takes a fraction of a second per reply, not microseconds:
# its scan keeps every probe of the lab but at most this many prompts per probe, sent
# this many at a time (the local engine decodes concurrent requests together).
REAL_MODEL_PROMPT_CAP = 3
REAL_MODEL_PARALLEL_ATTEMPTS = 8


def scan_for_lab(lab: str, *, model: str = "reference") -> ScanSpec:
    """Lab ``lab``'s scan; for any model but the reference one, its real-model variant."""
    try:
        spec = LAB_SCANS[lab]
    except KeyError:
        raise ValueError(f"no scan for lab {lab!r}; available: {', '.join(LAB_SCANS)}") from None
    return spec if model.partition(":")[0] == "reference" else for_real_model(spec)


@dataclass(frozen=True)
class RealModelScan(ScanSpec):
    """A lab's scan for a neural model: the same probes, fewer prompts, sent concurrently."""

    parallel_attempts: ClassVar[int] = REAL_MODEL_PARALLEL_ATTEMPTS
    # A long jailbreak prompt waits for the others' prefill: minutes on a busy 2-core machine.
    request_timeout: ClassVar[int] = 900
    # Lab 01's real-model scan took over 15 minutes on a 2-core machine busy with other work.
    run_timeout: ClassVar[int] = 3600


def for_real_model(spec: ScanSpec) -> RealModelScan:
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    return RealModelScan(**values | {"prompt_cap": min(spec.prompt_cap, REAL_MODEL_PROMPT_CAP)})
