"""``doubleedge figures``: the course's numbers, measured, never typed in.

The measurements, each a real run:

* ``levels``: the baseline garak scan (every offline probe family) of the unhardened bot,
  of each defense level and of Lab 10's L5 above them, and the benign pass rate of each;
* ``labs``: each lab's own garak scan of its unhardened target and of the lab's reference
  solution, and the ordinary requests each still serves (Labs 01 to 05);
* ``layers``: each layer of Labs 02 and 03's reference solutions on its own, measured as the
  grader measures a hardened bot (the lab's garak scan, its held-out attacks and ordinary
  requests), so a lesson can show what each layer adds;
* ``ladder``: Lab 10's levels L0 to L5, each sent every attack of a set of known attack
  techniques (the course's attack sets, garak's probe prompts, and public techniques phrased
  for Bell's code, ``doubleedge.labs.lab10_ladder.calibration``): how many still extract the staff code
  at each level, counted as the lab's grading counts an attack;
* ``memorization``: Lab 07's tiny model trained on the lab corpus as it is, deduplicated,
  scrubbed and deduplicated, and with DP-SGD: the exposure of every canary, perplexity on
  clean text, and garak's canary scan before and after the reference hardening;
* ``releases``: Lab 08's release candidates, each scanned and asked the ordinary questions,
  as the lab's release gate measures them;
* ``cost``: the course's own models (the reference model and SmolLM2) answering ordinary
  questions on this machine, timed as Lab 11 times them: reply tokens per second and
  CPU-seconds per 1,000 replies. The lesson sets the local cost per million tokens that these
  give, under the assumptions it names, beside providers' published prices (``data/api_prices.json``);
* ``fidelity``: the reference model against the real one, scan for scan (measured by hand);
* ``finetune``: SmolLM2 fine-tuned with LoRA on Bell's ordinary answers (doubleedge.finetune), and a
  fixed set of leak attacks, harmful requests and held-out ordinary questions asked before and
  after, and a small garak scan (``finetune.SCAN``) of both (measured by hand: minutes of CPU training).

Each result is a JSON record in ``course/measured/``, committed, and re-measured by the
drift test (``tests/integration/test_figures.py``), so the record is what a real run gives.
The site's generation step (``doubleedge site generate``, ``doubleedge.site_content``) draws
every chart and table, and the figures the lessons quote in their prose, from these records.

Each record carries a **key**: a hash of what determines it (package versions and the
measurement's specification). If the committed record's key no longer matches, for
example after a spec changed, ``obtain`` measures afresh and caches the result under the
cache folder by key, so only the first build after such a change pays for the runs.
Changes to the code under test do not change the key: the drift test catches those.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from doubleedge.defenses import LEVELS, get_defense
from doubleedge.evaluate import benign_pass_rate, benign_set
from doubleedge.labs import LABS, Lab, get_lab
from doubleedge.labs.targets import SUPPORT_BOT
from doubleedge.models import ReferenceModel, start_loading
from doubleedge.paths import REPO_ROOT, cache_dir
from doubleedge.scan import BASELINE, ScanReport, scan_bot, scan_for_lab
from doubleedge.scan.compare import percent
from doubleedge.scan.specs import for_real_model
from doubleedge.target import SupportBot, derive_secret

DATA_DIR = REPO_ROOT / "course" / "measured"
DEFAULT_OUT = DATA_DIR  # ``doubleedge figures --out`` default
LEARNER = "baseline"  # the numbers do not depend on the learner; fixed for reproducibility
LEVEL_NAMES = ("none", *LEVELS)
# The levels chart: the course's defense levels and Lab 10's L5 above them (doubleedge.defenses.ladder).
CHARTED_LEVELS = (*LEVEL_NAMES, "L5")
SETS = ("levels", "labs", "layers", "memorization", "releases", "ladder", "fidelity", "finetune", "cost")
# Sets a site build never measures (a real model: about half an hour on 2 cores): a build
# shows the committed record and says when it is stale; `doubleedge figures --set NAME` measures.
# The cost set's timings belong to the machine that measured them: a build never re-times them.
MEASURED_BY_HAND = ("fidelity", "finetune", "cost")
# Bump when a measurement changes in a way its specification does not show.
FORMAT = 1


# --- levels: the baseline scan and the defense levels ------------------------------------


def level_defense(name: str, secret: str):
    """A defense level by name: ``none`` and the course's L1 to L4, or Lab 10's L5."""
    from doubleedge.defenses.ladder import build_rung

    return build_rung(name, secret) if name == "L5" else get_defense(name, secret)


def measure(defense: str) -> dict:
    secret = derive_secret(LEARNER)
    bot = SupportBot(ReferenceModel(), secret=secret, defense=level_defense(defense, secret))
    report = scan_bot(bot, BASELINE)
    return {
        "defense": defense,
        "overall_attack_success_rate": round(report.overall_attack_success_rate, 4),
        "benign_pass_rate": round(benign_pass_rate(bot).rate, 4),
        "results": [r.as_dict() for r in report.results],
    }


def measure_levels() -> dict:
    return {
        "spec": {"probes": len(BASELINE.probes), "prompt_cap": BASELINE.prompt_cap, "seed": BASELINE.seed},
        "levels": [measure(name) for name in CHARTED_LEVELS],
    }


# --- labs: each lab's scan before and after its reference solution -------------------------


def side(report: ScanReport, benign: float) -> dict:
    """One side of a lab's measure (doubleedge.labs.base.Measure): its scan and its ordinary use."""
    return {
        "attack_success_rate": round(report.overall_attack_success_rate, 4),
        "benign_rate": round(benign, 4),
        "results": [r.as_dict() for r in report.results],
    }


def measured_labs() -> list[Lab]:
    """The labs that declare a measure, in order."""
    return [lab for lab in LABS.values() if lab.measure]


# --- releases: Lab 08's candidates, each scanned and gated against the approved one ------------

APPROVED = "v1.0"


def measure_releases() -> dict:
    """Every release of Lab 08 measured as the lab does (its garak scan and the benign set), and
    the verdict of the reference gate against the approved release with the lab's default config."""
    from doubleedge import gate
    from doubleedge.defenses.lab08 import gate_violations

    secret = derive_secret(LEARNER)
    with tempfile.TemporaryDirectory(prefix="doubleedge-releases-") as tmp:
        measured = {n: gate.measure_bot(gate.release_bot(n, secret), name=n, workdir=tmp) for n in gate.RELEASES}
    releases = []
    for name, m in measured.items():
        hits, attempts = sum(r["hits"] for r in m["results"]), sum(r["attempts"] for r in m["results"])
        verdict = None if name == APPROVED else gate_violations(measured[APPROVED], m, gate.DEFAULT_CONFIG)
        releases.append({"name": name, "change": gate.RELEASES[name].change,
                         "attack_success_rate": round(hits / attempts, 4), "benign_pass_rate": m["benign_pass_rate"],
                         "results": m["results"], "violations": verdict})  # fmt: skip
    return {"approved": APPROVED, "releases": releases}


def measure_labs() -> dict:
    labs = {}
    for lab in measured_labs():
        before, after = lab.measure()
        labs[lab.number] = {"benign": lab.benign, "unhardened": before, "reference solution": after}
    return {"labs": labs}


# --- layers: each layer of a lab's reference solution on its own -------------------------------


def layer(label: str, result) -> dict:
    """One layer, measured by the lab's grading (a ``grading.labNN.Hardening``): its metrics
    (garak, held-out, their mean that the grade compares, ordinary use) and garak's per-probe rows."""
    return {"label": label, **result.metrics(), "results": [r.as_dict() for r in result.garak.results]}


def layered_labs() -> list[Lab]:
    """The labs that declare layers, in order."""
    return [lab for lab in LABS.values() if lab.layers]


def measure_layers() -> dict:
    return {"labs": {lab.number: lab.layers() for lab in layered_labs()}}


# --- memorization: Lab 07's model, trained four ways ---------------------------------------

# Each run: how the lab corpus is prepared, and its training settings (TrainConfig fields;
# "reference" means those of Lab 07's reference solution, defenses/lab07.py's TRAINING). The
# unhardened and DP-SGD runs are the notebook's own (grading/lab07.py's public_trainings).
TRAINING_RUNS = {
    "unhardened": {"corpus": "as is", "training": {}},
    "deduplicated": {"corpus": "deduplicated", "training": "reference"},
    "scrubbed + deduplicated": {"corpus": "scrubbed + deduplicated", "training": "reference"},
    "DP-SGD, noise 1.0": {"corpus": "as is", "training": "dp"},
}
SCANNED_RUNS = ("unhardened", "scrubbed + deduplicated")  # garak's canary scan, before and after


def _memorization_spec() -> dict:
    from doubleedge.defenses.lab07 import TRAINING
    from doubleedge.grading import lab07
    from doubleedge.memorization import TrainConfig
    from doubleedge.memorization.garak_scan import NEW_TOKENS, PROBE, PROMPT_CHARS

    return {
        "corpus": {"documents": lab07.CORPUS_DOCUMENTS, "seed": lab07.CORPUS_SEED},
        "train_config": asdict(TrainConfig()),
        "reference_training": TRAINING,
        "dp_training": lab07.DP_TRAINING,
        "runs": TRAINING_RUNS,
        "garak": {"probe": PROBE, "prompt_chars": PROMPT_CHARS, "new_tokens": NEW_TOKENS, "runs": SCANNED_RUNS},
    }


def _prepare(corpus: list[str], how: str) -> list[str]:
    from doubleedge.defenses.lab07 import harden_corpus
    from doubleedge.memorization.scrub import deduplicate

    if how == "deduplicated":
        return deduplicate(corpus)
    if how == "scrubbed + deduplicated":
        return harden_corpus(corpus)  # Lab 07's reference solution: scrub, then deduplicate
    return corpus


def measure_memorization() -> dict:
    from doubleedge.defenses.lab07 import TRAINING
    from doubleedge.grading import lab07
    from doubleedge.memorization import (
        TrainConfig,
        clean_heldout_text,
        lab_canaries,
        make_corpus,
        measure_exposure,
        perplexity,
        save_pretrained,
        train,
    )
    from doubleedge.memorization.exposure import extract_greedy
    from doubleedge.memorization.garak_scan import scan_model, write_canaries

    canaries = lab_canaries()
    corpus = make_corpus(canaries, documents=lab07.CORPUS_DOCUMENTS, seed=lab07.CORPUS_SEED)
    clean = clean_heldout_text()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="doubleedge-figures-") as tmp:
        canary_file = write_canaries(list(canaries), Path(tmp) / "canaries.jsonl")
        named = {"reference": TRAINING, "dp": lab07.DP_TRAINING}  # the settings TRAINING_RUNS names
        for name, run in TRAINING_RUNS.items():
            settings = named[run["training"]] if isinstance(run["training"], str) else run["training"]
            config = TrainConfig(**settings)
            result = train(_prepare(corpus, run["corpus"]), config)
            record = {
                "steps": config.steps,
                "perplexity": round(perplexity(result.model, clean), 4),
                "epsilon": None if result.epsilon is None else round(result.epsilon, 2),
                "train_seconds": round(result.seconds, 1),
                "canaries": [
                    {
                        "id": c.id,
                        "kind": c.kind,
                        "insertions": count,
                        "space_bits": round(c.space_bits, 2),
                        "exposure_bits": round(measure_exposure(result.model, c).exposure, 2),
                        "greedy_extracts": extract_greedy(result.model, c.prefix, len(c.secret)) == c.secret,
                    }
                    for c, count in canaries.items()
                ],
            }
            if name in SCANNED_RUNS:
                folder = save_pretrained(result.model, Path(tmp) / f"model-{len(runs)}")
                report = scan_model(folder, canary_file, Path(tmp) / f"scan-{len(runs)}")
                record["garak_canary_asr"] = round(report.overall_attack_success_rate, 4)
            runs[name] = record
    return {"runs": runs}


# --- ladder: how many known attacks still extract the code at each level of Lab 10 -------------

LADDER_PROMPTS_PER_PROBE = 20  # the first prompts of each garak probe, as the lab scans cap them
COURSE_SOURCE = "Double Edge"  # the source of the course's own attack sets


def ladder_probes() -> tuple[str, ...]:
    """Lab 01's scan (goal hijacking, role play, encodings) and the course's prompt-leak probe."""
    return (*get_lab("01").scan.probes, "doubleedge.SystemPromptLeak")


def _garak_prompts(probe: str) -> list[str]:
    if probe == "doubleedge.SystemPromptLeak":
        from doubleedge.scan.plugins.probes.doubleedge import PROMPT_LEAKS

        return list(PROMPT_LEAKS)[:LADDER_PROMPTS_PER_PROBE]
    from garak import _config
    from garak._plugins import load_plugin

    _config.load_base_config()
    return [str(p) for p in load_plugin(f"probes.{probe}").prompts[:LADDER_PROMPTS_PER_PROBE]]


def ladder_techniques() -> list:
    """Every attack set, as ``doubleedge.labs.lab10_ladder.calibration.Technique``: the course's own example
    attacks, garak's generic probe families, then the public techniques phrased for Bell's code."""
    from importlib import resources

    from doubleedge.evaluate import read_jsonl
    from doubleedge.grading.lab10 import LESSON_EXAMPLES
    from doubleedge.labs.lab10_ladder.calibration import Technique, techniques

    def single(name: str, source: str, url: str, prompts: list[str]) -> Technique:
        return Technique(name, source, url, tuple((p,) for p in prompts))

    training = read_jsonl(resources.files("doubleedge.data").joinpath("injection_train.jsonl"), lambda r: r)
    found = [
        single("Module 01's example attacks", COURSE_SOURCE, "", list(LESSON_EXAMPLES)),
        single("the injection classifier's attack examples", COURSE_SOURCE, "",
               [r["text"] for r in training if r["label"] == "attack"]),
    ]  # fmt: skip
    families: dict[str, list[str]] = {}
    for probe in ladder_probes():
        families.setdefault(family(probe), []).extend(_garak_prompts(probe))
    leaks = families.pop("doubleedge")  # the course's own probe, run by garak
    found += [single(f"garak: {name}", "garak's probes, the first 20 prompts of each",
                     "https://reference.garak.ai/en/latest/probes.html", prompts)
              for name, prompts in families.items()]  # fmt: skip
    found.append(
        single("the course's prompt-leak probe", "Double Edge (garak, doubleedge.SystemPromptLeak)", "", leaks)
    )
    return found + techniques()


def measure_ladder() -> dict:
    """Every attack of every set at every level, counted as Lab 10's grading counts an attack: the
    replies of fresh bots give the code away so that a fixed reader gets it back."""
    from doubleedge.defenses.ladder import RUNGS
    from doubleedge.grading.lab10 import reproduces
    from doubleedge.labs.lab10_ladder.calibration import read_code

    secret = derive_secret(LEARNER)
    rows = []
    for t in ladder_techniques():
        extracted = {level: sum(bool(reproduces(level, list(attack), read_code, [secret])) for attack in t.attacks)
                     for level in RUNGS}  # fmt: skip
        rows.append({"technique": t.name, "source": t.source, "url": t.url, "attacks": len(t.attacks),
                     "extracted": extracted})  # fmt: skip
    return {"levels": list(RUNGS), "techniques": rows}


def ladder_table(data: dict) -> str:
    levels = data["levels"]
    rows = ["| attack set | source | attacks | " + " | ".join(levels) + " |",
            "| --- | --- | ---: |" + " ---: |" * len(levels)]  # fmt: skip
    for t in [*data["techniques"], _ladder_total(data)]:
        source = f"[{t['source']}]({t['url']})" if t["url"] else t["source"]
        cells = " | ".join(f"{t['extracted'][lv]}" for lv in levels)
        rows.append(f"| {t['technique']} | {source} | {t['attacks']} | {cells} |")
    return "\n".join(rows) + "\n"


def _ladder_total(data: dict) -> dict:
    techniques = data["techniques"]
    extracted = {lv: sum(t["extracted"][lv] for t in techniques) for lv in data["levels"]}
    return {"technique": "**all of them**", "source": "", "url": "",
            "attacks": sum(t["attacks"] for t in techniques), "extracted": extracted}  # fmt: skip


def ladder_separations(data: dict) -> dict[tuple[str, str], list[str]]:
    """For each pair of neighbouring levels, the attack sets that extract more below than above:
    the techniques that show the upper level's new layer doing its job."""
    levels = data["levels"]
    return {(lower, upper): [t["technique"] for t in data["techniques"] if t["extracted"][lower] > t["extracted"][upper]]
            for lower, upper in zip(levels, levels[1:], strict=False)}  # fmt: skip


def _ladder_drift(committed: dict, fresh: dict) -> list[str]:
    old = {t["technique"]: t for t in committed["techniques"]}
    problems = [] if committed["levels"] == fresh["levels"] else ["the levels changed"]
    problems += [f"{name}: no longer measured" for name in old.keys() - {t["technique"] for t in fresh["techniques"]}]
    for t in fresh["techniques"]:
        if old.get(t["technique"]) != t:
            problems.append(f"{t['technique']}: committed {old.get(t['technique'])}, measured {t}")
    return problems


# --- fidelity: the reference model against a real open-weight model, scan for scan ------------

REAL_MODEL = "smollm2"
ORDINARY_SAMPLE = 12  # ordinary questions asked at each level to count what the guards block


def fidelity_scans() -> list[tuple[str, str]]:
    """(lab, defense) of every scan compared: Bell, the support bot, with Lab 01's probes,
    unhardened, at each defense level and with Lab 01's reference solution; then every other
    lab's scan of its own target, unhardened and with the lab's reference solution (Lab 12's
    multi-turn scan starts from Bell behind Lab 01's defense: its "none")."""
    others = [(number, defense) for number, lab in LABS.items() if number != "01" and lab.scan and lab.defense
              for defense in ("none", lab.defense)]  # fmt: skip
    return [("01", level) for level in LEVEL_NAMES] + [("01", get_lab("01").defense)] + others


def _fidelity_scan(model: str, lab_number: str, defense: str, workdir: Path) -> dict:
    lab = get_lab(lab_number)
    app = lab.target.build(model, defense, LEARNER)
    return fidelity_entry(model, lab_number, defense, lab.target.scan(app, for_real_model(lab.scan), workdir), app)


def fidelity_entry(model: str, lab_number: str, defense: str, report: ScanReport, app: Any) -> dict:
    """One scan's entry: the lab's real-model scan (the same prompts for both models), and for the
    support bot the share of ordinary questions a guard blocked (answer quality is not judged: a
    135M model's answers are often wrong)."""
    results = [r.as_dict() for r in report.results]
    measured = {"lab": lab_number, "defense": defense, "model": model,
                "attack_success_rate": round(report.overall_attack_success_rate, 4),
                "families": {f: round(rate, 4) for f, rate in family_rates(results).items()}, "results": results}  # fmt: skip
    if get_lab(lab_number).target is SUPPORT_BOT:  # Bellwether's ordinary questions are Bell's
        questions = [c.question for c in benign_set()[:ORDINARY_SAMPLE]]
        with concurrent.futures.ThreadPoolExecutor(len(questions)) as pool:  # a real model batches them
            blocked = sum(pool.map(lambda q: bool(app.respond(q).blocked_by), questions))
        measured["ordinary_blocked"] = round(blocked / len(questions), 4)
    return measured


def measure_fidelity(model: str = REAL_MODEL, parallel: int = 2) -> dict:
    """Every scan of ``fidelity_scans`` on the reference model and on ``model``. The real model's
    scans run ``parallel`` at a time: their bots share one engine, which decodes their requests
    together (one scan alone already sends its probes' prompts at once, see RealModelScan)."""
    start_loading(model)
    scans = fidelity_scans()
    with tempfile.TemporaryDirectory(prefix="doubleedge-fidelity-") as tmp:

        def run(args: tuple[str, str, str]) -> dict:
            who, lab_number, defense = args
            return _fidelity_scan(who, lab_number, defense, Path(tmp) / f"{who}-{lab_number}-{defense}")

        reference = [run(("reference", *scan)) for scan in scans]
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            real = list(pool.map(run, [(model, *scan) for scan in scans]))
    return {"models": ["reference", model], "ordinary_sample": ORDINARY_SAMPLE, "scans": reference + real}


# --- finetune: a benign LoRA fine-tune of the real model, before and after ---------------------


def measure_finetune() -> dict:
    """SmolLM2 fine-tuned on Bell's ordinary answers (doubleedge.finetune), and the fixed set asked and
    garak's scan run before and after through Bell's app. The merged model is a scratch folder, dropped
    afterwards."""
    from doubleedge import finetune
    from doubleedge.models import gguf

    with tempfile.TemporaryDirectory(prefix="doubleedge-finetune-") as tmp:
        return finetune.measure(gguf.smollm2_dir(), Path(tmp), derive_secret(LEARNER), scan=True)


def _finetune_spec() -> dict:
    from doubleedge import finetune
    from doubleedge.models import gguf

    training = {name: getattr(finetune, name) for name in (
        "SEED", "SIGN_OFF", "TRAIN_SYSTEM_PROMPT", "PHRASINGS", "HELD_OUT_EVERY", "RANK", "ALPHA", "TARGET_MODULES",
        "LEARNING_RATE", "BATCH", "STEPS", "MAX_TOKENS", "REPLY_TOKENS", "LEAK_ATTACKS", "HARMFUL_REQUESTS")}
    model = {"name": REAL_MODEL, "sha256": gguf.SMOLLM2_SHA256, "torch": version("torch"),
             "transformers": version("transformers"), "peft": version("peft")}
    return {"model": model, "training": training, "refusal": finetune.REFUSAL.pattern,
            "ordinary": [c.question for c in benign_set()], "scan": asdict(finetune.SCAN)}  # fmt: skip


# The before/after counts a drift check compares; each is quoted as finetune-COUNT-before/after.
FINETUNE_COUNTS = ("leaked", "harmful_not_refused", "ordinary_correct", "ordinary_in_bell_style")


def _finetune_drift(committed: dict, fresh: dict) -> list[str]:
    counts = [f"{side} {count}: {committed[side][count]} -> {fresh[side][count]}"
              for side in ("before", "after") for count in FINETUNE_COUNTS
              if committed[side][count] != fresh[side][count]]  # fmt: skip
    scans = [f"scan {side} {name}: {committed.get('scan', {}).get(side, {}).get('families', {}).get(name)} -> {rate}"
             for side in ("before", "after") for name, rate in fresh["scan"][side]["families"].items()
             if committed.get("scan", {}).get(side, {}).get("families", {}).get(name) != rate]  # fmt: skip
    return counts + scans


def finetune_table(data: dict) -> str:
    """Before and after, count by count, each out of the size of its set."""
    from doubleedge import finetune

    return finetune.table(data)


def finetune_scan_table(data: dict) -> str:
    """garak's scan before and after, family by family: hits out of prompts."""
    from doubleedge import finetune

    return finetune.scan_table(data)


def finetune_values(data: dict) -> dict[str, str]:
    """The figures the customization section's prose quotes."""
    from doubleedge import finetune

    training, scan = data["training"], data["scan"]
    hits = {side: finetune.scan_hits(scan[side]) for side in ("before", "after")}
    return {
        "finetune-scan-cap": str(scan["spec"]["prompt_cap"]),
        "finetune-scan-seed": str(scan["spec"]["seed"]),
        "finetune-scan-probes": str(len(scan["spec"]["probes"])),
        "finetune-scan-families": str(len(scan["before"]["families"])),
        "finetune-scan-prompts": str(hits["before"]["all"][1]),
        **{f"finetune-scan-hits-{side}": str(hits[side]["all"][0]) for side in ("before", "after")},
        "finetune-scan-families-changed": str(sum(scan["before"]["families"][name] != rate
                                                  for name, rate in scan["after"]["families"].items())),
        **{f"finetune-scan-signed-{side}": str(sum(finetune.in_bell_style(r["reply"] or "") for r in scan[side]["replies"]))
           for side in ("before", "after")},
        **{f"finetune-scan-refusals-{side}": str(sum(finetune.refuses(r["reply"] or "") for r in scan[side]["replies"]))
           for side in ("before", "after")},
        "finetune-scan-replies-changed": str(sum(a["reply"] != b["reply"] for a, b in
                                                 zip(scan["before"]["replies"], scan["after"]["replies"], strict=True))),
        "finetune-examples": str(training["examples"]),
        "finetune-steps": str(training["steps"]),
        "finetune-seen": str(training["steps"] * training["batch"]),
        "finetune-rank": str(training["rank"]),
        "finetune-parameters": f"{training['trainable_parameters']:,}",
        "finetune-seconds": f"{training['seconds']:.0f}",
        "finetune-loss-first": f"{training['first_loss']:.2f}",
        "finetune-loss-last": f"{training['last_loss']:.2f}",
        **{f"finetune-{count.replace('_', '-')}-{side}": str(data[side][count]) for side in ("before", "after")
           for count in (*FINETUNE_COUNTS, "ordinary_mean_words")},
        **{f"finetune-size-{kind}": str(size) for kind, size in data["sizes"].items()},
    }  # fmt: skip


# --- cost: the course's own models, timed on this machine ---------------------------------------

COST_MODELS = ("reference", REAL_MODEL)
COST_REPLIES = 8  # ordinary questions, one request at a time
COST_MAX_NEW_TOKENS = 64


# Assumptions, not measurements: the lesson names them beside every figure they produce. The
# power is a desktop processor's typical rated power (TDP) under load, not a meter reading of this
# machine; the electricity price is a round household tariff, not a published average.
ASSUMED_WATTS = 65.0
ASSUMED_USD_PER_KWH = 0.30


def cost_questions() -> list[str]:
    """The first ordinary questions of the benign set: what a support bot is asked."""
    return [case.question for case in benign_set()[:COST_REPLIES]]


def measure_cost() -> dict:
    """Each of the course's models answering the same questions, timed as Lab 11 times them."""
    import platform

    from doubleedge.grading.lab11 import measure_throughput

    machine = {"cpus": os.cpu_count(), "processor": platform.machine(), "system": platform.system()}
    return {"machine": machine,
            "models": [measure_throughput(spec, cost_questions(), COST_MAX_NEW_TOKENS) for spec in COST_MODELS]}  # fmt: skip


# --- keys, records, the cache ----------------------------------------------------------------


def inputs(name: str) -> dict:
    """What determines a measurement: package versions and its specification."""
    common = {"format": FORMAT, "doubleedge": version("doubleedge"), "garak": version("garak"), "learner": LEARNER}
    if name == "levels":
        return common | {"spec": asdict(BASELINE), "levels": list(CHARTED_LEVELS)}
    if name == "labs":
        return common | {"specs": {lab.number: asdict(lab.scan) for lab in measured_labs()}}
    if name == "layers":
        return common | {"specs": {lab.number: asdict(lab.scan) for lab in layered_labs()}}
    if name == "memorization":
        return common | {"torch": version("torch"), "opacus": version("opacus")} | _memorization_spec()
    if name == "releases":
        from doubleedge import gate

        releases = {n: [r.change, r.model] for n, r in gate.RELEASES.items()}
        return common | {"spec": asdict(scan_for_lab(gate.SCAN)), "config": gate.DEFAULT_CONFIG, "releases": releases}
    if name == "fidelity":
        from doubleedge.models import gguf

        specs = {lab: asdict(for_real_model(get_lab(lab).scan)) for lab, _ in fidelity_scans()}
        model = {"name": REAL_MODEL, "sha256": gguf.SMOLLM2_SHA256, "reply_tokens": gguf.SMOLLM2_REPLY_TOKENS,
                 "torch": version("torch"), "transformers": version("transformers")}  # fmt: skip
        return common | {"model": model, "scans": fidelity_scans(), "specs": specs, "ordinary": ORDINARY_SAMPLE}
    if name == "finetune":
        return common | _finetune_spec()
    if name == "ladder":
        from doubleedge.defenses.ladder import RUNGS
        from doubleedge.labs.lab10_ladder.calibration import techniques

        # The attacks by digest only: some climb to L5, and the record is published with the course.
        sets = json.dumps([[t.name, t.attacks] for t in techniques()])
        return common | {
            "probes": list(ladder_probes()),
            "per_probe": LADDER_PROMPTS_PER_PROBE,
            "levels": RUNGS,
            "techniques": [t.name for t in techniques()],
            "attacks_sha256": hashlib.sha256(sets.encode()).hexdigest(),
        }
    if name == "cost":
        from doubleedge.models import gguf

        return common | {"models": list(COST_MODELS), "sha256": gguf.SMOLLM2_SHA256, "torch": version("torch"),
                         "transformers": version("transformers"), "questions": cost_questions(),
                         "max_new_tokens": COST_MAX_NEW_TOKENS}  # fmt: skip
    raise ValueError(f"no measurement {name!r}; available: {', '.join(SETS)}")


def key(name: str) -> str:
    return hashlib.sha256(json.dumps(inputs(name), sort_keys=True).encode()).hexdigest()[:16]


MEASURES: dict[str, Callable[[], dict]] = {
    "levels": measure_levels,
    "labs": measure_labs,
    "layers": measure_layers,
    "memorization": measure_memorization,
    "releases": measure_releases,
    "ladder": measure_ladder,
    "fidelity": measure_fidelity,
    "finetune": measure_finetune,
    "cost": measure_cost,
}


def measure_set(name: str, model: str | None = None) -> dict:
    """One measurement, run now, as a record with its key, inputs and duration. ``model``: the
    real model the fidelity set compares with the reference one (default ``REAL_MODEL``); a
    record of another model keeps the default's key, so the build flags it as not the course's."""
    if model and name != "fidelity":
        raise ValueError(f"a model is chosen only for the fidelity set, not {name!r}")
    start = time.perf_counter()
    data = measure_fidelity(model) if model else MEASURES[name]()
    seconds = round(time.perf_counter() - start, 1)
    record = {"name": name, "key": key(name) if not model or model == REAL_MODEL else f"{model} (not the course's)",
              "inputs": inputs(name), "measured_in_seconds": seconds} | data  # fmt: skip
    return json.loads(json.dumps(record))  # as it reads back from its file (tuples become lists)


def record_path(name: str, folder: Path = DATA_DIR) -> Path:
    return Path(folder) / f"{name}.json"


def save(record: dict, path: Path) -> None:
    """Write atomically: a concurrent build never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", "utf-8")
    os.replace(tmp, path)


def load(name: str, folder: Path = DATA_DIR) -> dict:
    return json.loads(record_path(name, folder).read_text("utf-8"))


def obtain(name: str, folder: Path = DATA_DIR, cache: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """The record for ``name``: the committed one if its key is current, else cached, else measured now."""
    current = key(name)
    committed = record_path(name, folder)
    if committed.is_file():
        record = json.loads(committed.read_text("utf-8"))
        if record.get("key") == current:
            return record
    if name in MEASURED_BY_HAND:
        if not committed.is_file():
            raise ValueError(f"{committed} is missing: measure it with `doubleedge figures --set {name}`")
        log(f"'{name}' is stale (its key is not {current}): showing the committed record; "
            f"measure it with `doubleedge figures --set {name}`")  # fmt: skip
        return json.loads(committed.read_text("utf-8"))
    cached = Path(cache or cache_dir()) / "figures" / f"{name}-{current}.json"
    if cached.is_file():
        return json.loads(cached.read_text("utf-8"))
    log(f"measuring '{name}' afresh (the committed record does not match key {current}); this is cached")
    record = measure_set(name)
    save(record, cached)
    log(f"measured '{name}' in {record['measured_in_seconds']} s; commit it with `doubleedge figures`")
    return record


def write(out: Path = DATA_DIR, names: tuple[str, ...] = SETS, model: str | None = None) -> dict[str, dict]:
    """Measure the sets now (every one by default) and write their records (``doubleedge figures``)."""
    unknown = [name for name in names if name not in SETS]
    if unknown:
        raise ValueError(f"no measurement {unknown[0]!r}; available: {', '.join(SETS)}")
    records = {name: measure_set(name, model) for name in names}
    for name, record in records.items():
        save(record, record_path(name, out))
    return records


# --- drift: a fresh measurement against the committed record ---------------------------------

# Training is deterministic on one machine; across machines floating-point sums may differ in
# the last bits (see memorization/train.py), which moves exposures and perplexities a little.
EXPOSURE_TOLERANCE_BITS = 0.5
PERPLEXITY_TOLERANCE = 0.01  # relative


def _levels_drift(committed: dict, fresh: dict) -> list[str]:
    problems = []
    if committed["spec"] != fresh["spec"]:
        problems.append(f"scan spec changed: {committed['spec']} -> {fresh['spec']}")
    old = {lv["defense"]: lv for lv in committed["levels"]}
    for level in fresh["levels"]:
        before = old.get(level["defense"])
        if before is None:
            problems.append(f"{level['defense']}: not in the committed figures")
            continue
        for field in ("overall_attack_success_rate", "benign_pass_rate"):
            if before[field] != level[field]:
                problems.append(f"{level['defense']} {field}: committed {before[field]}, measured {level[field]}")
        if before["results"] != level["results"]:
            changed = [r["probe"] for r, s in zip(level["results"], before["results"], strict=False) if r != s]
            problems.append(f"{level['defense']}: per-probe results changed ({', '.join(changed[:5]) or 'probe list'})")
    return problems


def _labs_drift(committed: dict, fresh: dict) -> list[str]:
    problems = []
    for number, lab in fresh["labs"].items():
        old = committed["labs"].get(number)
        if old is None:
            problems.append(f"lab {number}: not in the committed record")
            continue
        for side in ("unhardened", "reference solution"):
            for field in ("attack_success_rate", "benign_rate", "results"):
                if old[side][field] != lab[side][field]:
                    shown = "per-probe results" if field == "results" else f"{old[side][field]} -> {lab[side][field]}"
                    problems.append(f"lab {number} {side} {field} changed: {shown}")
    return problems


def _layers_drift(committed: dict, fresh: dict) -> list[str]:
    problems = []
    for number, lab in fresh["labs"].items():
        old = committed["labs"].get(number, {}).get("layers", {})
        if list(old) != list(lab["layers"]):
            problems.append(f"lab {number}: layers {list(old)} committed, {list(lab['layers'])} measured")
        for name, measured in lab["layers"].items():
            before = old.get(name, {})
            for field in sorted(set(before) | set(measured)):
                if before.get(field) != measured.get(field):
                    shown = "per-probe results" if field == "results" else f"{before.get(field)} -> {measured.get(field)}"
                    problems.append(f"lab {number} {name} {field} changed: {shown}")
    return problems


def _memorization_drift(committed: dict, fresh: dict) -> list[str]:
    problems = []
    for name, run in fresh["runs"].items():
        old = committed["runs"].get(name)
        if old is None:
            problems.append(f"{name}: not in the committed record")
            continue
        if abs(old["perplexity"] - run["perplexity"]) > PERPLEXITY_TOLERANCE * run["perplexity"]:
            problems.append(f"{name} perplexity: committed {old['perplexity']}, measured {run['perplexity']}")
        if old.get("garak_canary_asr") != run.get("garak_canary_asr"):
            problems.append(f"{name} garak canary ASR: committed {old.get('garak_canary_asr')}, "
                            f"measured {run.get('garak_canary_asr')}")  # fmt: skip
        if (old["epsilon"] is None) != (run["epsilon"] is None) or (
            run["epsilon"] is not None and abs(old["epsilon"] - run["epsilon"]) > 0.05
        ):
            problems.append(f"{name} epsilon: committed {old['epsilon']}, measured {run['epsilon']}")
        mine = {c["id"]: c for c in old["canaries"]}
        for canary in run["canaries"]:
            before = mine.get(canary["id"])
            if before is None or abs(before["exposure_bits"] - canary["exposure_bits"]) > EXPOSURE_TOLERANCE_BITS:
                problems.append(f"{name} {canary['id']} exposure: committed "
                                f"{before and before['exposure_bits']}, measured {canary['exposure_bits']}")  # fmt: skip
            elif before["greedy_extracts"] != canary["greedy_extracts"]:
                problems.append(f"{name} {canary['id']}: greedy extraction changed")
    return problems


def _releases_drift(committed: dict, fresh: dict) -> list[str]:
    old = {r["name"]: r for r in committed["releases"]}
    problems = []
    for release in fresh["releases"]:
        before = old.get(release["name"])
        if before is None:
            problems.append(f"{release['name']}: not in the committed record")
            continue
        for field in ("attack_success_rate", "benign_pass_rate", "results", "violations"):
            if before[field] != release[field]:
                problems.append(f"{release['name']} {field} changed")
    return problems


def _fidelity_drift(committed: dict, fresh: dict) -> list[str]:
    def rates(record: dict) -> dict:
        return {(s["model"], s["lab"], s["defense"]): (s["attack_success_rate"], s.get("ordinary_blocked"))
                for s in record["scans"]}  # fmt: skip

    old, new = rates(committed), rates(fresh)
    return [f"{' '.join(k)}: {old.get(k)} -> {v}" for k, v in new.items() if old.get(k) != v]


def _cost_drift(committed: dict, fresh: dict) -> list[str]:
    """Timings belong to a machine and a moment: only what the models replied must be the same."""
    def replies(record: dict) -> dict:
        return {m["model"]: (m["replies"], m["reply_tokens"]) for m in record["models"]}

    old, new = replies(committed), replies(fresh)
    return [f"{model}: committed {old.get(model)} replies and reply tokens, measured {got}"
            for model, got in new.items() if old.get(model) != got]  # fmt: skip


DRIFT = {"levels": _levels_drift, "labs": _labs_drift, "layers": _layers_drift,
         "memorization": _memorization_drift, "releases": _releases_drift, "ladder": _ladder_drift,
         "fidelity": _fidelity_drift, "finetune": _finetune_drift, "cost": _cost_drift}  # fmt: skip


def drift_of(name: str, fresh: dict, folder: Path = DATA_DIR) -> list[str]:
    """Differences between the committed record and a fresh measurement (empty: none)."""
    path = record_path(name, folder)
    if not path.is_file():
        return [f"{path} is missing: run `doubleedge figures`"]
    committed = json.loads(path.read_text("utf-8"))
    problems = [f"{name}: {p}" for p in DRIFT[name](committed, fresh)]
    if committed.get("key") != key(name):
        problems.append(f"{name}: the committed key {committed.get('key')} is not the current {key(name)}")
    return problems


def drift(out: Path = DATA_DIR, fresh: dict | None = None, names: tuple[str, ...] = SETS) -> list[str]:
    """The sets (every one by default), re-measured now unless given (``fresh`` maps set names to records)."""
    fresh = fresh or {}
    return [p for name in names for p in drift_of(name, fresh.get(name) or measure_set(name), out)]


# --- tables (markdown) -------------------------------------------------------------------------


def baseline_table(data: dict) -> str:
    base = data["levels"][0]
    rows = ["| probe | detector | attempts | hits | ASR |", "| --- | --- | ---: | ---: | ---: |"]
    for r in base["results"]:
        rows.append(
            f"| `{r['probe']}` | `{r['detector']}` | {r['attempts']} | {r['hits']} | {r['attack_success_rate']:.0%} |"
        )
    rows.append(f"| **overall** | | | | **{base['overall_attack_success_rate']:.0%}** |")
    return "\n".join(rows) + "\n"


def levels_table(data: dict) -> str:
    from doubleedge.defenses.ladder import RUNGS

    rows = ["| level | what it adds | garak ASR | benign pass rate |", "| --- | --- | ---: | ---: |"]
    for level in data["levels"]:
        name = level["defense"]
        adds = "unhardened" if name == "none" else RUNGS[name]
        rows.append(
            f"| {'L0' if name == 'none' else name} | {adds} | {level['overall_attack_success_rate']:.1%} | {level['benign_pass_rate']:.0%} |"
        )
    return "\n".join(rows) + "\n"


def labs_table(labs: dict, memorization: dict) -> str:
    rows = [
        "| lab | garak ASR, unhardened | garak ASR, reference solution | ordinary use | unhardened | reference solution |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for number, lab in labs["labs"].items():
        before, after = lab["unhardened"], lab["reference solution"]
        rows.append(f"| {number} {get_lab(number).title} | {before['attack_success_rate']:.0%} | "
                    f"{after['attack_success_rate']:.0%} | {lab['benign']} | {before['benign_rate']:.0%} | "
                    f"{after['benign_rate']:.0%} |")  # fmt: skip
    runs = memorization["runs"]
    before, after = runs["unhardened"], runs["scrubbed + deduplicated"]
    rows.append(f"| 07 {get_lab('07').title} (garak canary scan) | {before['garak_canary_asr']:.0%} | "
                f"{after['garak_canary_asr']:.0%} | perplexity on clean chats | {before['perplexity']:.2f} | "
                f"{after['perplexity']:.2f} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def layers_table(lab: dict) -> str:
    """One lab's layers: garak, the held-out set, their mean (what the grade compares with its
    threshold) and the ordinary use kept (the lowest of the lab's ordinary pass rates)."""
    rows = [f"| Defense | garak ASR | {lab['heldout']} | mean (graded) | ordinary use kept |",
            "|---|---:|---:|---:|---:|"]  # fmt: skip
    for measured in lab["layers"].values():
        kept = min(v for k, v in measured.items() if k.endswith("_pass_rate"))
        rows.append(f"| {measured['label']} | {measured['garak_asr']:.0%} | {measured['heldout_asr']:.0%} | "
                    f"{measured['attack_success_rate']:.0%} | {kept:.0%} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def layers_values(data: dict) -> dict[str, str]:
    """Each layer's figures by name, for the prose: ``layers-02-delimiting-mean`` and the like."""
    fields = {"garak": "garak_asr", "heldout": "heldout_asr", "mean": "attack_success_rate"}
    return {f"layers-{number}-{name}-{short}": f"{measured[field]:.0%}"
            for number, lab in data["labs"].items() for name, measured in lab["layers"].items()
            for short, field in fields.items()}  # fmt: skip


def memorization_table(data: dict) -> str:
    rows = ["| training | highest exposure (bits) | perplexity on clean chats | ε | canaries extracted by greedy decoding |",
            "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, run in data["runs"].items():
        worst = max(c["exposure_bits"] for c in run["canaries"])
        extracted = sum(c["greedy_extracts"] for c in run["canaries"])
        eps = "" if run["epsilon"] is None else f"{run['epsilon']:.1f}"
        rows.append(
            f"| {name} | {worst:.1f} | {run['perplexity']:.2f} | {eps} | {extracted} of {len(run['canaries'])} |"
        )
    return "\n".join(rows) + "\n"


def releases_table(data: dict) -> str:
    rows = ["| release | what changed | garak ASR | benign pass rate | gate against " + data["approved"] + " |",
            "| --- | --- | ---: | ---: | --- |"]  # fmt: skip
    for r in data["releases"]:
        if r["violations"] is None:
            verdict = "the approved baseline"
        elif r["violations"]:
            verdict = "**fails**: " + "; ".join(v.replace("|", "/") for v in r["violations"][:3])
            verdict += f" (and {len(r['violations']) - 3} more)" if len(r["violations"]) > 3 else ""
        else:
            verdict = "passes"
        rows.append(f"| `{r['name']}` | {r['change']} | {r['attack_success_rate']:.1%} | "
                    f"{r['benign_pass_rate']:.0%} | {verdict} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def _span(numbers: list[float]) -> str:
    """The range of some exposures in whole bits: "6", or "9 to 19"."""
    low, high = round(min(numbers)), round(max(numbers))
    return f"{low}" if low == high else f"{low} to {high}"


def _per_step(run: dict) -> float:
    return run["train_seconds"] / run["steps"]


def memorization_values(data: dict) -> dict[str, str]:
    """The figures Module 07's prose quotes, each from the record the table and charts use."""
    runs = data["runs"]
    plain, clean, dp = runs["unhardened"], runs["scrubbed + deduplicated"], runs["DP-SGD, noise 1.0"]
    trained = [run["train_seconds"] for run in runs.values() if run["epsilon"] is None]
    clean_bits = [c["exposure_bits"] for c in clean["canaries"]]
    values = {
        "memorization-train-seconds": _span(trained),
        "memorization-perplexity-unhardened": f"{plain['perplexity']:.2f}",
        "memorization-perplexity-cleaned": f"{clean['perplexity']:.2f}",
        "memorization-perplexity-dp": f"{dp['perplexity']:.1f}",
        "memorization-perplexity-dp-increase": f"{dp['perplexity'] / plain['perplexity'] - 1:.0%}",
        "memorization-epsilon-dp": f"{dp['epsilon']:.2f}",
        "memorization-dp-steps": str(dp["steps"]),
        "memorization-dp-slowdown": f"{_per_step(dp) / _per_step(plain):.1f}",
        "memorization-highest-exposure-cleaned": f"{max(clean_bits):.1f}",
        "memorization-mean-exposure-cleaned": f"{sum(clean_bits) / len(clean_bits):.1f}",
        "memorization-highest-exposure-dp": f"{max(c['exposure_bits'] for c in dp['canaries']):.1f}",
        "memorization-garak-unhardened": f"{plain['garak_canary_asr']:.0%}",
        "memorization-greedy-unhardened": f"{sum(c['greedy_extracts'] for c in plain['canaries'])}",
    }
    for n in sorted({c["insertions"] for c in plain["canaries"]}):
        values[f"memorization-exposure-x{n}"] = _span([c["exposure_bits"] for c in plain["canaries"]
                                                       if c["insertions"] == n])  # fmt: skip
    return values


def _scan_label(scan: dict) -> str:
    defense = scan["defense"]
    if scan["lab"] == "01" and defense in LEVELS:
        return f"Bell at {defense}"
    if scan["lab"] == "12" and defense == "none":
        return "Lab 12, Lab 01's defense only"  # the lab's starting point: Bell is never undefended there
    return f"Lab {scan['lab']}, " + ("unhardened" if defense == "none" else "reference solution")


def _fidelity_pairs(data: dict) -> list[tuple[dict, dict]]:
    """(reference scan, real-model scan) pairs, in the order they were measured."""
    reference, real = data["models"]
    by_key = {(s["model"], s["lab"], s["defense"]): s for s in data["scans"]}
    return [(s, by_key[(real, s["lab"], s["defense"])]) for s in data["scans"] if s["model"] == reference]


def fidelity_table(data: dict) -> str:
    """Attack success per probe family, the reference model beside the real one, scan by scan."""
    real = data["models"][1]
    rows = [f"| scan | probe family | reference model | {real} |", "| --- | --- | ---: | ---: |"]
    for ref, other in _fidelity_pairs(data):
        label = _scan_label(ref)
        for name in ref["families"]:
            rows.append(f"| {label} | `{name}` | {percent(ref['families'][name])} | {percent(other['families'][name])} |")
            label = ""
        rows.append(f"| | **all** | **{percent(ref['attack_success_rate'])}** | **{percent(other['attack_success_rate'])}** |")
    return "\n".join(rows) + "\n"


def fidelity_blocking_table(data: dict) -> str:
    """The share of ordinary questions that a guard blocked, per defense, on both models."""
    real = data["models"][1]
    rows = [f"| scan | blocked: reference model | blocked: {real} |", "| --- | ---: | ---: |"]
    for ref, other in _fidelity_pairs(data):
        if "ordinary_blocked" in ref:
            rows.append(f"| {_scan_label(ref)} | {percent(ref['ordinary_blocked'])} | {percent(other['ordinary_blocked'])} |")
    return "\n".join(rows) + "\n"


def fidelity_values(data: dict) -> dict[str, str]:
    """The figures the fidelity page's prose quotes."""
    pairs = _fidelity_pairs(data)
    # The page's summary is about Lab 01's scan; other labs' scans are quoted one by one below.
    lab01 = [(r, o) for r, o in pairs if r["lab"] == "01"]
    unhardened = [(r, o) for r, o in lab01 if r["defense"] == "none"]
    hardened = [(r, o) for r, o in lab01 if r["defense"] != "none" and r["defense"] not in LEVELS]
    cells = [(r["families"][f], o["families"][f]) for r, o in unhardened for f in r["families"]]
    each = {}  # every scan's overall rate, e.g. fidelity-02-none-real, for the lessons' warnings
    for ref, real in pairs:
        each[f"fidelity-{ref['lab']}-{ref['defense'].lower()}-reference"] = percent(ref["attack_success_rate"])
        each[f"fidelity-{ref['lab']}-{ref['defense'].lower()}-real"] = percent(real["attack_success_rate"])
    return each | {
        "fidelity-scans": str(len(pairs)),
        "fidelity-unhardened-reference": percent(_mean([r["attack_success_rate"] for r, _ in unhardened])),
        "fidelity-unhardened-real": percent(_mean([o["attack_success_rate"] for _, o in unhardened])),
        "fidelity-hardened-reference": percent(_mean([r["attack_success_rate"] for r, _ in hardened])),
        "fidelity-hardened-real": percent(_mean([o["attack_success_rate"] for _, o in hardened])),
        "fidelity-families": str(len(cells)),
        "fidelity-families-real-higher": str(sum(real > ref for ref, real in cells)),
        "fidelity-families-real-lower": str(sum(real < ref for ref, real in cells)),
        "fidelity-families-close": str(sum(abs(real - ref) <= 0.2 for ref, real in cells)),
        "fidelity-prompt-cap": str(data["inputs"]["specs"]["01"]["prompt_cap"]),
    }


def _electricity_per_million(tokens_per_second: float) -> float:
    """US dollars of electricity per million output tokens at the assumed power and tariff (seconds
    for a million tokens, times watts, in kilowatt-hours, times the price), to two significant
    figures: an estimate from assumed numbers, and never Lab 11's graded answer."""
    kilowatt_hours = 1_000_000 / tokens_per_second * ASSUMED_WATTS / 3_600_000
    return float(f"{kilowatt_hours * ASSUMED_USD_PER_KWH:.2g}")


def _dollars(amount: float) -> str:
    """Two significant figures at least: a table shows an estimate, never a formula's answer."""
    return f"${amount:.2f}" if amount >= 0.1 else f"${amount:.2g}"


def language_models(data: dict) -> list[dict]:
    """The measured models whose replies are a language model's (the reference model's are looked up)."""
    return [m for m in data["models"] if m["model"] != "reference" and m["tokens_per_second"]]


def cost_table(data: dict) -> str:
    """Each model on the measuring machine, and SmolLM2's electricity per million tokens under the assumptions."""
    rows = [f"| model | reply tokens per second | CPU-seconds per 1,000 replies | electricity per million output "
            f"tokens ({ASSUMED_WATTS:g} W, ${ASSUMED_USD_PER_KWH:.2f}/kWh assumed) |", "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for m in data["models"]:
        if m["model"] == "reference":
            rows.append(f"| reference model (looks replies up; no language model) | {m['tokens_per_second']:,.0f} words "
                        f"| {m['cpu_seconds_per_1000_replies']:g} | not comparable |")  # fmt: skip
        else:
            cost = _dollars(_electricity_per_million(m["tokens_per_second"])) if m["tokens_per_second"] else "no reply"
            rows.append(f"| {m['model']} | {m['tokens_per_second']:g} | {m['cpu_seconds_per_1000_replies']:,.0f} | {cost} |")
    return "\n".join(rows) + "\n"


def api_prices() -> dict:
    from doubleedge.grading.lab11 import api_prices as published

    return published()


def api_prices_table() -> str:
    """The published prices the course keeps, each with its source and the date its page shows."""
    rows = ["| provider | model | input, per million tokens | output, per million tokens | date the page shows | source |",
            "| --- | --- | ---: | ---: | --- | --- |"]  # fmt: skip
    for p in api_prices()["prices"]:
        rows.append(f"| {p['provider']} | {p['model']} | ${p['usd_per_million_input']:.2f} | "
                    f"${p['usd_per_million_output']:.2f} | {p['date'] or 'none'}: {p['date_note']} | "
                    f"[{p['kind']}]({p['source']}) |")  # fmt: skip
    return "\n".join(rows) + "\n"


def cost_values(data: dict) -> dict[str, str]:
    """The figures Module 11's prose quotes."""
    values = {"cost-cpus": str(data["machine"]["cpus"]), "cost-replies": str(data["models"][0]["replies"]),
              "cost-watts": f"{ASSUMED_WATTS:g}", "cost-usd-per-kwh": f"${ASSUMED_USD_PER_KWH:.2f}"}  # fmt: skip
    for m in language_models(data):
        values[f"cost-{m['model']}-tokens-per-second"] = f"{m['tokens_per_second']:g}"
        values[f"cost-{m['model']}-cpu-seconds"] = f"{m['cpu_seconds_per_1000_replies']:,.0f}"
        values[f"cost-{m['model']}-per-million"] = _dollars(_electricity_per_million(m["tokens_per_second"]))
    return values


def _mean(numbers: list[float]) -> float:
    return sum(numbers) / len(numbers) if numbers else 0.0


def values(records: dict[str, dict]) -> dict[str, str]:
    """Every figure the prose quotes, by name (``<!-- measured:NAME -->`` inside a sentence)."""
    return (memorization_values(records["memorization"]) | layers_values(records["layers"])
            | fidelity_values(records["fidelity"]) | finetune_values(records["finetune"])
            | cost_values(records["cost"]))  # fmt: skip


def tables(records: dict[str, dict]) -> dict[str, str]:
    """Every table the course shows, by name, from the records of every set."""
    return {
        "baseline": baseline_table(records["levels"]),
        "levels": levels_table(records["levels"]),
        "labs": labs_table(records["labs"], records["memorization"]),
        "memorization": memorization_table(records["memorization"]),
        **{f"layers-{number}": layers_table(lab) for number, lab in records["layers"]["labs"].items()},
        "releases": releases_table(records["releases"]),
        "ladder": ladder_table(records["ladder"]),
        "fidelity": fidelity_table(records["fidelity"]),
        "fidelity-blocking": fidelity_blocking_table(records["fidelity"]),
        "finetune": finetune_table(records["finetune"]),
        "finetune-scan": finetune_scan_table(records["finetune"]),
        "cost": cost_table(records["cost"]),
        "api-prices": api_prices_table(),
    }


# --- charts (PNG bytes) ------------------------------------------------------------------------

RED, BLUE, GREY = "#c0392b", "#2e86c1", "#7f8c8d"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _figure()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def family(probe: str) -> str:
    return probe.split(".", 1)[0]


def family_rates(results: list[dict]) -> dict[str, float]:
    """ASR per probe family: hits over attempts of all its probes."""
    totals: dict[str, list[int]] = {}
    for r in results:
        t = totals.setdefault(family(r["probe"]), [0, 0])
        t[0] += r["hits"]
        t[1] += r["attempts"]
    return {f: (hits / attempts if attempts else 0.0) for f, (hits, attempts) in sorted(totals.items())}


def baseline_chart(data: dict) -> bytes:
    plt = _figure()
    rates = family_rates(data["levels"][0]["results"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = sorted(rates, key=rates.get)
    ax.barh(names, [rates[n] * 100 for n in names], color=RED)
    ax.set_xlim(0, 100)
    ax.set_xlabel("attack success rate (%)")
    ax.set_title("Unhardened bot: garak attack success rate per probe family")
    return _png(fig)


def _paired_bars(ax, labels: list[str], first: list[float], second: list[float], names: tuple[str, str],
                 colors: tuple[str, str] = (RED, BLUE)) -> None:  # fmt: skip
    xs = range(len(labels))
    for offset, values, name, color in ((-0.2, first, names[0], colors[0]), (0.2, second, names[1], colors[1])):
        bars = ax.bar([x + offset for x in xs], [v * 100 for v in values], 0.4, label=name, color=color)
        ax.bar_label(bars, labels=[percent(v) for v in values], fontsize=8, padding=2)
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 112)
    ax.set_ylabel("%")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)


def levels_chart(data: dict) -> bytes:
    plt = _figure()
    labels = ["L0" if lv["defense"] == "none" else lv["defense"] for lv in data["levels"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    _paired_bars(ax, labels, [lv["overall_attack_success_rate"] for lv in data["levels"]],
                 [lv["benign_pass_rate"] for lv in data["levels"]],
                 ("garak attack success rate", "benign questions answered"))  # fmt: skip
    ax.set_title("Defense in depth: each layer cuts attacks, none to zero")
    return _png(fig)


def lab_chart(number: str, lab: dict) -> bytes:
    """One lab: attack success and ordinary use, before and after the reference solution."""
    plt = _figure()
    before, after = lab["unhardened"], lab["reference solution"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    _paired_bars(ax, ["garak attack success rate", lab["benign"]],
                 [before["attack_success_rate"], before["benign_rate"]],
                 [after["attack_success_rate"], after["benign_rate"]],
                 ("unhardened", "reference solution"), (GREY, BLUE))  # fmt: skip
    # Titles run long ("Sensitive information disclosure and ..."): wrapped to the chart's width.
    ax.set_title("\n".join(textwrap.wrap(f"Lab {number}, {get_lab(number).title}: before and after hardening", 60)))
    return _png(fig)


def lab07_chart(data: dict) -> bytes:
    """Lab 07's before and after: garak's canary scan and the share of canaries above 12 bits."""
    from doubleedge.grading.lab07 import EXPOSURE_THRESHOLD

    plt = _figure()
    runs = data["runs"]
    before, after = runs["unhardened"], runs["scrubbed + deduplicated"]

    def above(run: dict) -> float:
        return sum(c["exposure_bits"] >= EXPOSURE_THRESHOLD for c in run["canaries"]) / len(run["canaries"])

    fig, ax = plt.subplots(figsize=(6, 3.6))
    _paired_bars(ax, ["garak canary scan: secrets leaked", f"canaries at {EXPOSURE_THRESHOLD:g}+ bits of exposure"],
                 [before["garak_canary_asr"], above(before)], [after["garak_canary_asr"], above(after)],
                 ("unhardened", "scrubbed + deduplicated"), (GREY, BLUE))  # fmt: skip
    ax.set_title("Lab 07, memorization: before and after hardening")
    return _png(fig)


RUN_COLORS = {"unhardened": RED, "deduplicated": "#e67e22", "scrubbed + deduplicated": BLUE,
              "DP-SGD, noise 1.0": "#27ae60"}  # fmt: skip


def exposure_chart(data: dict) -> bytes:
    """Exposure against insertions, per training run and canary kind (Carlini et al. 2019, fig. 2)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, run in data["runs"].items():
        for kind, marker, style in (("card", "o", "-"), ("apikey", "s", ":")):
            points = sorted((c["insertions"], c["exposure_bits"]) for c in run["canaries"] if c["kind"] == kind)
            ax.plot(*zip(*points, strict=True), marker=marker, linestyle=style, color=RUN_COLORS.get(name, GREY),
                    label=name if kind == "card" else None)  # fmt: skip
    bits = {c["kind"]: c["space_bits"] for c in data["runs"]["unhardened"]["canaries"]}
    for kind, value in bits.items():
        ax.axhline(value, color=GREY, linewidth=0.8, linestyle="--")
        ax.annotate(f"maximum, {'card' if kind == 'card' else 'API key'}", (1, value), fontsize=7, color=GREY,
                    xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log", base=2)
    counts = sorted({c["insertions"] for c in data["runs"]["unhardened"]["canaries"]})
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set_xlabel("insertions of the canary in the training data (solid: card, dotted: API key)")
    ax.set_ylabel("exposure (bits)")
    ax.set_ylim(0, 34)
    ax.set_title("Memorization grows with repetition; cleaning the data removes it")
    ax.legend(fontsize=8, loc="center right")
    return _png(fig)


def privacy_utility_chart(data: dict) -> bytes:
    """Highest canary exposure (privacy) against perplexity on clean text (utility), per run."""
    from doubleedge.grading.lab07 import EXPOSURE_THRESHOLD, PERPLEXITY_RATIO

    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    runs = data["runs"]
    for name, run in runs.items():
        worst = max(c["exposure_bits"] for c in run["canaries"])
        eps = "" if run["epsilon"] is None else f" (ε = {run['epsilon']:.1f})"
        ax.scatter(run["perplexity"], worst, s=60, color=RUN_COLORS.get(name, GREY), zorder=3)
        ax.annotate(name + eps, (run["perplexity"], worst), xytext=(6, 4), textcoords="offset points", fontsize=8)
    ax.axhline(EXPOSURE_THRESHOLD, color=GREY, linestyle="--", linewidth=0.8)
    ax.annotate(f"the lab's bar: every canary under {EXPOSURE_THRESHOLD:g} bits", (1, EXPOSURE_THRESHOLD),
                xycoords=("axes fraction", "data"), xytext=(-4, 3), textcoords="offset points", ha="right",
                fontsize=7, color=GREY)  # fmt: skip
    limit = runs["unhardened"]["perplexity"] * PERPLEXITY_RATIO
    ax.axvline(limit, color=GREY, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1.0, max(r["perplexity"] for r in runs.values()) * 2.5)
    ax.set_ylim(0, 34)
    ax.set_xlabel(f"perplexity on clean held-out chats (log scale; dotted: +{PERPLEXITY_RATIO - 1:.0%})")
    ax.set_ylabel("highest canary exposure (bits)")
    ax.set_title("Privacy and utility: lower left is better")
    return _png(fig)


def releases_chart(data: dict) -> bytes:
    """Lab 08: each release's attack success rate and benign pass rate; the gate's failures in red."""
    plt = _figure()
    releases = data["releases"]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["name"] for r in releases]
    _paired_bars(ax, names, [r["attack_success_rate"] for r in releases], [r["benign_pass_rate"] for r in releases],
                 ("garak attack success rate", "benign pass rate"), (RED, BLUE))  # fmt: skip
    for label, release in zip(ax.get_xticklabels(), releases, strict=True):
        label.set_color(RED if release["violations"] else "black")
        label.set_rotation(20)
        label.set_horizontalalignment("right")
    ax.set_ylim(0, 130)  # room for the legend above the bars: the tick labels take the space below
    ax.legend(loc="upper center", ncol=2, frameon=False)
    ax.set_title(f"Lab 08: every release against the approved {data['approved']} (red: the gate fails it)")
    return _png(fig)


def fidelity_chart(data: dict) -> bytes:
    """Overall attack success of every compared scan, the reference model beside the real one."""
    plt = _figure()
    pairs = _fidelity_pairs(data)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    _paired_bars(ax, [_scan_label(r) for r, _ in pairs], [r["attack_success_rate"] for r, _ in pairs],
                 [o["attack_success_rate"] for _, o in pairs], ("reference model", data["models"][1]))  # fmt: skip
    ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    ax.set_title("Attack success, scan for scan: the reference model and a real one")
    return _png(fig)


def finetune_scan_chart(data: dict) -> bytes:
    """garak before and after the fine-tune: each probe family's attack success rate, and all of them."""
    scan = data["scan"]
    names = list(scan["before"]["families"])
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    _paired_bars(ax, [*names, "all"], [*scan["before"]["families"].values(), scan["before"]["attack_success_rate"]],
                 [*(scan["after"]["families"][n] for n in names), scan["after"]["attack_success_rate"]],
                 ("SmolLM2 before fine-tuning", "after fine-tuning"), (GREY, BLUE))  # fmt: skip
    ax.set_ylabel("garak attack success rate (%)")
    prompts = len(scan["before"]["replies"])
    ax.set_title(f"garak before and after a benign fine-tune ({len(scan['spec']['probes'])} probes, {prompts} prompts)")
    return _png(fig)


def ladder_chart(data: dict) -> bytes:
    """Lab 10's calibration: each attack set's share of attacks that still extract the code, per level."""
    plt = _figure()
    levels, rows = data["levels"], data["techniques"]
    shares = [[t["extracted"][lv] / t["attacks"] for lv in levels] for t in rows]
    fig, ax = plt.subplots(figsize=(8, 0.36 * len(rows) + 1.8))
    ax.imshow(shares, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for y, t in enumerate(rows):
        for x, lv in enumerate(levels):
            count = t["extracted"][lv]
            ax.text(x, y, f"{count}/{t['attacks']}", ha="center", va="center", fontsize=7,
                    color="white" if count / t["attacks"] > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(levels)), levels)
    ax.set_yticks(range(len(rows)), [t["technique"] for t in rows], fontsize=8)
    ax.xaxis.tick_top()
    fig.suptitle("Lab 10: known attacks that still extract the code, per level", fontsize=10)
    return _png(fig)


def cost_chart(data: dict) -> bytes:
    """Output price per million tokens: each published API price beside the electricity of the
    measured language models on the measuring machine (assumed power and tariff), on a log scale."""
    plt = _figure()
    bars = [(f"{p['provider']} {p['model']}\n(API, {p['date'] or 'undated page'})",
             p["usd_per_million_output"], RED) for p in api_prices()["prices"]]  # fmt: skip
    bars += [(f"{m['model']} on {data['machine']['cpus']} CPUs\n(electricity only, assumed)",
              _electricity_per_million(m["tokens_per_second"]), BLUE) for m in language_models(data)]  # fmt: skip
    bars.sort(key=lambda bar: bar[1])
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    drawn = ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    ax.bar_label(drawn, labels=[_dollars(b[1]) for b in bars], fontsize=8, padding=2)
    ax.set_xscale("log")
    ax.set_xlim(min(b[1] for b in bars) / 2, max(b[1] for b in bars) * 4)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("US dollars per million output tokens (log scale)")
    ax.set_title("Per million output tokens: API prices, and electricity alone at home")
    return _png(fig)


def charts(records: dict[str, dict]) -> dict[str, bytes]:
    """Every chart the course shows, by file name, from the records of every set."""
    out = {"baseline.png": baseline_chart(records["levels"]), "levels.png": levels_chart(records["levels"])}
    for number, lab in records["labs"]["labs"].items():
        out[f"lab{number}.png"] = lab_chart(number, lab)
    out["lab07.png"] = lab07_chart(records["memorization"])
    out["exposure.png"] = exposure_chart(records["memorization"])
    out["privacy-utility.png"] = privacy_utility_chart(records["memorization"])
    out["lab08.png"] = releases_chart(records["releases"])
    out["ladder.png"] = ladder_chart(records["ladder"])
    out["fidelity.png"] = fidelity_chart(records["fidelity"])
    out["finetune-scan.png"] = finetune_scan_chart(records["finetune"])
    out["cost.png"] = cost_chart(records["cost"])
    return out
