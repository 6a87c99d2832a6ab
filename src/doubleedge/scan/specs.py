"""garak scans: small, explicit and reproducible. Each lab declares its own (doubleedge.labs);
the baseline scan of every offline probe family is here.

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
    # garak processes that scan the probes at once (runner.probe_groups); 1: one process runs them all.
    garak_processes: ClassVar[int] = 1
    # Prompts garak sends at once (its system.parallel_attempts); 1 sends them one by one.
    # A class constant, not a field: the fields are the committed figures' cache key.
    parallel_attempts: ClassVar[int] = 1
    # Seconds garak waits for one reply; a read timeout kills its whole run.
    request_timeout: ClassVar[int] = 120
    # Seconds the whole garak run may take.
    run_timeout: ClassVar[int] = 900
    # What garak calls the target inside some prompts (dan's "{generator.name}"); None: the /chat
    # URL, whose port changes from run to run, and so does any reply that depends on it.
    target_name: ClassVar[str | None] = None

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


# A neural model on 2 CPU cores takes a fraction of a second per reply, not microseconds:
# its scan keeps every probe of the lab but at most this many prompts per probe (two: Lab 01's
# scan then takes about 80 s on an idle 2-core machine, three took about 115 s), sent this
# many at a time (the local engine decodes concurrent requests together).
REAL_MODEL_PROMPT_CAP = 2
REAL_MODEL_PARALLEL_ATTEMPTS = 8
# garak runs one probe at a time, and a probe sends at most REAL_MODEL_PROMPT_CAP prompts: the
# scan runs its probes in up to this many garak processes at once (one per probe for every
# lab's scan), so the engine always has rows to decode together.
REAL_MODEL_GARAK_PROCESSES = 10


def scan_for_lab(lab: str, *, model: str = "reference") -> ScanSpec:
    """The garak scan a lab package declares (doubleedge.labs); for any model but the
    reference one, its real-model variant."""
    from doubleedge.labs import LABS

    scans = {n: found.scan for n, found in LABS.items() if found.scan is not None}
    try:
        spec = scans[lab]
    except KeyError:
        raise ValueError(f"no scan for lab {lab!r}; available: {', '.join(scans)}") from None
    return spec if model.partition(":")[0] == "reference" else for_real_model(spec)


@dataclass(frozen=True)
class RealModelScan(ScanSpec):
    """A lab's scan for a neural model: the same probes, fewer prompts, sent concurrently."""

    parallel_attempts: ClassVar[int] = REAL_MODEL_PARALLEL_ATTEMPTS
    garak_processes: ClassVar[int] = REAL_MODEL_GARAK_PROCESSES
    # Some probes write the target's name into their prompts (dan's "{generator.name}"): a fixed
    # name, not the URL with its changing port, so a model's replies do not depend on the port.
    target_name: ClassVar[str | None] = "Assistant"
    # A long jailbreak prompt waits for the others' prefill: minutes on a busy 2-core machine.
    request_timeout: ClassVar[int] = 900
    # Lab 01's real-model scan took over 15 minutes on a 2-core machine busy with other work.
    run_timeout: ClassVar[int] = 3600


def for_real_model(spec: ScanSpec) -> RealModelScan:
    values = {f.name: getattr(spec, f.name) for f in fields(spec)}
    return RealModelScan(**values | {"prompt_cap": min(spec.prompt_cap, REAL_MODEL_PROMPT_CAP)})
