"""garak scans: small, explicit and reproducible. Each lab declares its own (doubleedge.labs);
the baseline scan of every offline probe family is here.

Each scan names its probes (never "all"), runs one generation per prompt with a
fixed seed, and caps the prompts per probe so it takes seconds, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


def scan_for_lab(lab: str) -> ScanSpec:
    """The garak scan a lab package declares (doubleedge.labs)."""
    from doubleedge.labs import LABS

    scans = {n: found.scan for n, found in LABS.items() if found.scan is not None}
    try:
        return scans[lab]
    except KeyError:
        raise ValueError(f"no scan for lab {lab!r}; available: {', '.join(scans)}") from None
