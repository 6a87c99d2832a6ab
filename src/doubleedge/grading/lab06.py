"""Lab 06's checks, shared by the notebook's tests (a preview in the learner's kernel)
and the grader (the authoritative score, computed in a fresh process).

What the grader calls, per test cell ``grade_id`` (every name below is in this module unless
said otherwise):

* ``test_marker`` (solution cell ``marker``): ``check_read_marker(read_marker, scratch, learner)``
  with the learner's ``read_marker(model_file: str, marker_file: str) -> str`` called in the
  learner's process: the checker builds the lab's poisoned pickle in the shared folder, its
  payload writing a text whose proof derives from the grading secret, and the answer must be
  that text (the learner's own hub writes another: its proof derives from the learner's key).
* ``test_scan_findings`` (solution cell ``scan_answers``):
  ``check_scan_findings(value("FLAGGED_FILES"), value("PAYLOAD_GLOBAL"), reference_scan(scratch))``.
* ``test_scan_blind_spots`` (solution cell ``scan_answers``):
  ``check_blind_spots(value("MISSED_VARIANTS"))``.
* ``test_safe_load_refuses`` and ``test_safe_load_loads`` (solution cell ``safe_load``):
  the learner's ``safe_load(path: str, expected_sha256: str) -> dict[str, Tensor]`` must
  run *in the learner's process* on files the grader builds, so the grader does:

  1. ``cases = grading_cases(scratch, heldout_path)`` in the checker (``scratch`` an empty
     folder that the learner's process can read and write: the payloads of poisoned
     files create marker files in ``scratch/markers/``; ``heldout_path`` is
     ``get_lab("06").heldout_attacks``);
  2. in the learner's process, for each case, ``doubleedge.supplychain.outcome_of(safe_load,
     case.path, case.sha256)``: a JSON dict (the tensors never cross the pipe);
  3. back in the checker, ``judge_refusals(cases, outcomes, markers)`` and
     ``judge_loads(cases, outcomes, markers)``, where ``outcomes`` maps case id to that
     JSON and ``markers = marker_state(cases)``, read *after* all cases ran.

  ``check_refuses`` / ``check_loads`` do all three in one process (the notebook preview).
* ``test_template_is_trusted`` (solution cell ``template_check``): the learner's
  ``template_is_trusted(path: str) -> bool`` is called in the learner's process on GGUF files the
  checker writes into the shared folder (``template_cases(scratch, heldout_path)``: a copy of the
  publisher's SmolLM2 file, a clean copy of it with fewer tensors, the lab's tampered copy, and
  the held-out tampered copies, whose triggers and placements the learner never sees);
  ``judge_templates(cases, answers)``.
  ``check_template_is_trusted`` does both in one process (the notebook preview).
* The policy in words (``policy_reading``) is a written answer that a person grades
  (course/instructors/written-answers.md): no automatic test.

Each returns ``Check(passed, reason)``. Reasons name the kind of case (its ``note``),
never a held-out file's contents.
"""

from __future__ import annotations

import json
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from doubleedge.grading.checks import Check
from doubleedge.grading.sharedfolder import fresh_folder, refuse_links
from doubleedge.models.gguf import SMOLLM2_FILE, smollm2_file
from doubleedge.supplychain import (
    COMMUNITY_VARIANTS,
    BuiltCase,
    ScanSummary,
    build_case,
    build_cases,
    build_community_model,
    load_specs,
    outcome_of,
    scan_path,
)
from doubleedge.supplychain.artifacts import (
    LAB_BACKDOOR,
    Backdoor,
    chat_template,
    text_sha256,
    write_tampered,
    write_with_template,
)
from doubleedge.supplychain.build import DEFAULT_NAMES, MARKER_PURPOSE, TEMPLATE_KIND, proof_text
from doubleedge.target.secrets import grading_secret, learner_id

LAB = "06"
TAMPERED_TENSOR_BYTES = 16 * 2**20  # per graded GGUF copy: a notebook's eight fit the sandbox's /tmp
# The variants that are unsafe to load although picklescan reports nothing dangerous in them.
BLIND_SPOTS = frozenset({"remote-code", "tampered"})
TRIMMED_NOTE = "a copy of the publisher's file (same chat template, trimmed tensors)"

__all__ = [
    "BLIND_SPOTS",
    "Check",
    "check_blind_spots",
    "check_loads",
    "check_read_marker",
    "check_refuses",
    "check_scan_findings",
    "check_template_is_trusted",
    "grading_cases",
    "grading_marker_text",
    "judge_loads",
    "judge_refusals",
    "judge_templates",
    "marker_state",
    "reference_scan",
    "template_answers",
    "template_cases",
    "visible_cases",
    "write_template_copies",
]


def grading_marker_text(nonce: str, learner: str) -> str:
    """What the grader's poisoned file writes: a proof whose code derives from the grading secret
    (the course key), which no process of the learner's holds, so no such process computes it."""
    return proof_text(nonce, grading_secret(learner, case=f"{MARKER_PURPOSE}:{nonce}"))


def check_read_marker(read_marker: object, scratch: str | Path, learner: str | None = None) -> Check:
    """Does ``read_marker(model_file, marker_file)`` return the text that the payload of a poisoned
    file built here, under ``scratch``, writes into its marker file?

    The file is the lab's poisoned pickle with a fresh nonce and a grading-secret proof: only
    loading it (or reading its pickle's instructions) gives its text; a text computed in the
    learner's process or copied from their own hub is never it. Reasons never show the text."""
    if not callable(read_marker):
        return Check(False, "read_marker must be a function: read_marker(model_file, marker_file) returns "
                     "the text that the file's payload wrote into marker_file")  # fmt: skip
    nonce = secrets.token_hex(8)
    text = grading_marker_text(nonce, learner or learner_id())
    root = fresh_folder(scratch, "marker-")  # learner code may write in scratch (the shared folder)
    case = build_case(COMMUNITY_VARIANTS["pickle"], root, text=text)
    refuse_links(root)
    try:
        answer = read_marker(str(case.path / DEFAULT_NAMES[case.spec.format]), str(case.marker))
    except Exception as exc:  # learner code: report the kind of failure, never its message
        from doubleedge.grading.lab01 import learner_failure

        return Check(False, f"{learner_failure('read_marker', exc)} on the poisoned file the grader built")
    if isinstance(answer, str) and answer.strip() == text:
        return Check(True)
    return Check(False, "read_marker did not return the text that the payload of the file it was given wrote "
                 "into marker_file: load that file (or read its pickle's instructions) and return what the "
                 "payload wrote; a text from your own hub or computed in your notebook is not that file's")  # fmt: skip


def reference_scan(scratch: str | Path) -> ScanSummary:
    """picklescan's findings on a freshly built community model (what the learner scanned)."""
    return scan_path(build_community_model(Path(scratch) / "community").root)


def _global_names(summary: ScanSummary) -> set[str]:
    names = set()
    for finding in summary.findings:
        if finding.safety == "dangerous":
            module = "builtins" if finding.module == "__builtin__" else finding.module
            names |= {f"{module}.{finding.name}", f"{finding.module}.{finding.name}", finding.name}
    return names


def check_scan_findings(flagged: object, payload_global: object, summary: ScanSummary) -> Check:
    if not isinstance(flagged, (list, tuple, set)) or not all(isinstance(f, str) for f in flagged):
        return Check(False, "FLAGGED_FILES must be a list of file paths (strings)")
    if sorted({f.strip().strip("/") for f in flagged}) != summary.dangerous_files:
        return Check(
            False, "FLAGGED_FILES is not the list of files picklescan rates dangerous (paths as it prints them)"
        )
    if not isinstance(payload_global, str) or payload_global.strip() not in _global_names(summary):
        return Check(False, "PAYLOAD_GLOBAL is not the dangerous global picklescan found (e.g. 'os.system')")
    return Check(True)


def check_blind_spots(value: object) -> Check:
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        return Check(False, f"MISSED_VARIANTS must be a list of variant names from {sorted(COMMUNITY_VARIANTS)}")
    if {v.strip() for v in value} == BLIND_SPOTS:
        return Check(True)
    return Check(False, "MISSED_VARIANTS is not the set of unsafe variants that the scan does not flag")


# --- safe_load -------------------------------------------------------------------------


def visible_cases(scratch: str | Path) -> list[BuiltCase]:
    """The lab's four community-model variants, built afresh."""
    root = Path(scratch) / "visible"
    return [build_case(spec, root) for spec in COMMUNITY_VARIANTS.values()]


def grading_cases(scratch: str | Path, heldout: str | Path | None = None) -> list[BuiltCase]:
    """The visible variants plus the held-out cases (if ``heldout`` exists), built under ``scratch``
    (for the grader, a :func:`fresh_folder`); raises PlantedLink if a link appeared among them."""
    cases = visible_cases(scratch)
    if heldout is not None and Path(heldout).is_file():
        cases += build_cases(load_specs(heldout), Path(scratch) / "heldout")
    refuse_links(scratch)
    return cases


def marker_state(cases: Iterable[BuiltCase]) -> dict[str, bool]:
    return {case.id: case.marker.exists() for case in cases}


def _judge(case: BuiltCase, outcome: dict, marker_ran: bool) -> str:
    """Why the loader handled ``case`` wrong (naming the kind of case), or "" if it was right."""
    what = case.spec.note or case.id
    if marker_ran:
        return f"loading ran the code in {what}"
    if outcome.get("refused") == "NotImplementedError":  # the learner copy's stub refuses everything
        return f"is not written yet (it raised NotImplementedError on {what})"
    if "refused" in outcome:
        return f"refused {what}, which must load" if case.expect == "load" else ""
    if case.expect == "refuse":
        return f"loaded {what}, which must be refused"
    if "loaded" not in outcome:
        return f"returned something other than a dict of tensors for {what}"
    if outcome["loaded"] != case.expected:
        return f"returned other tensors than {what} holds"
    return ""


def _judge_all(cases: list[BuiltCase], outcomes: dict, markers: dict, expects: set[str]) -> Check:
    picked = [c for c in cases if c.expect in expects]
    problems = [_judge(c, outcomes.get(c.id, {}), markers.get(c.id, False)) for c in picked]
    problems = [p for p in problems if p]
    if not problems:
        return Check(True)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check(False, f"safe_load {problems[0]}{more}")


def judge_refusals(cases: list[BuiltCase], outcomes: dict[str, dict], markers: dict[str, bool]) -> Check:
    """Every case that must be refused was refused, and no file's code ran (in any case)."""
    ran = [c for c in cases if markers.get(c.id) and c.expect != "refuse"]
    if ran:
        return Check(False, f"safe_load ran the code in {ran[0].spec.note or ran[0].id}")
    return _judge_all(cases, outcomes, markers, {"refuse"})


def judge_loads(cases: list[BuiltCase], outcomes: dict[str, dict], markers: dict[str, bool]) -> Check:
    """Every clean case loaded with exactly its tensors; clean pickles loaded exactly or were refused."""
    return _judge_all(cases, outcomes, markers, {"load", "either"})


def _run(safe_load: Callable, cases: list[BuiltCase]) -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch notes unusual pickle protocols
        outcomes = {case.id: outcome_of(safe_load, case.path, case.sha256) for case in cases}
    return outcomes, marker_state(cases)


def check_refuses(safe_load: Callable, cases: list[BuiltCase]) -> Check:
    return judge_refusals(cases, *_run(safe_load, cases))


def check_loads(safe_load: Callable, cases: list[BuiltCase]) -> Check:
    return judge_loads(cases, *_run(safe_load, cases))


# --- template_is_trusted (part 5: a real GGUF file's chat template) ----------------------


@dataclass(frozen=True)
class TemplateCase:
    id: str
    path: Path
    trusted: bool  # the publisher's template (True), or a tampered one
    note: str


def load_template_backdoors(heldout: str | Path) -> list[tuple[str, Backdoor, str]]:
    """The held-out tampered templates: ``(id, backdoor, note)`` per ``"kind": "chat-template"`` record."""
    records = [json.loads(line) for line in Path(heldout).read_text("utf-8").splitlines() if line.strip()]
    return [(r["id"], Backdoor(r["trigger"], r["instruction"], r["placement"]), r["note"])
            for r in records if r.get("kind") == TEMPLATE_KIND]  # fmt: skip


def template_cases(
    scratch: str | Path, heldout: str | Path | None = None, built: Path | None = None
) -> list[TemplateCase]:
    """The publisher's file (a link to the installed file, under another path), a clean trimmed copy
    of it, the lab's tampered copy and the held-out tampered copies (if ``heldout`` exists), under
    ``scratch/templates`` (for the grader, ``scratch`` is a :func:`fresh_folder`; raises PlantedLink
    if a link other than the publisher's appeared among them).

    The copies keep every header key and the tensors that fit in ``TAMPERED_TENSOR_BYTES``: the
    grading sandbox lets a process write no file as big as the model (``Limits.file_bytes``). The
    clean copy (the publisher's template, another path, size and file hash) must be trusted too:
    the exercise judges the template, so a check of the file's identity (its path, inode, size or
    whole-file hash) does not pass.

    ``built``: a folder ``write_template_copies`` filled once for the whole class (the grader's
    baseline): its files are copied here, not written afresh, when it holds these held-out cases."""
    folder = Path(scratch) / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    original = smollm2_file()
    clean = folder / "publisher" / original.name
    clean.parent.mkdir(exist_ok=True)
    clean.symlink_to(original)
    copies = _template_copies(folder, heldout)
    if built is not None and _built_from(built) == _manifest(heldout):
        shutil.copytree(built / "templates", folder, dirs_exist_ok=True)  # a copy: never the class's own files
    else:
        _write_copies(copies)
    refuse_links(folder, made=[clean])  # the publisher's file: the one link made here
    return [TemplateCase("publisher", clean, True, "the publisher's file"), *(case for case, _ in copies)]


def write_template_copies(workdir: Path, heldout: str | Path | None) -> Path:
    """The copies ``template_cases`` hands to every learner, written once (under ``workdir/templates``),
    with a manifest of the held-out cases they hold. The grader calls this once per class."""
    folder = Path(workdir) / "templates"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _write_copies(_template_copies(folder, heldout))
    (Path(workdir) / MANIFEST).write_text(_manifest(heldout), "utf-8")  # beside the copies: never copied
    return Path(workdir)


MANIFEST = "manifest.json"


def _manifest(heldout: str | Path | None) -> str:
    """A digest of what the copies for ``heldout`` are built from: the held-out backdoors, the size, the source."""
    backdoors = load_template_backdoors(heldout) if heldout is not None and Path(heldout).is_file() else []
    held = [[case_id, b.trigger, b.instruction, b.placement, note] for case_id, b, note in backdoors]
    return text_sha256(
        json.dumps({"tensor_bytes": TAMPERED_TENSOR_BYTES, "source": smollm2_file().name, "heldout": held})
    )


def _built_from(folder: Path) -> str:
    path = folder / MANIFEST
    return path.read_text("utf-8") if path.is_file() else ""


def _template_copies(folder: Path, heldout: str | Path | None) -> list[tuple[TemplateCase, Backdoor | None]]:
    """Every copy's case (its path under ``folder``) and the backdoor it carries (None: the clean copy)."""
    name = smollm2_file().name
    copies = [
        (TemplateCase("publisher-trimmed", folder / "mirror" / name, True, TRIMMED_NOTE), None),
        (TemplateCase("lab-tampered", folder / "lab" / SMOLLM2_FILE, False, "the lab's tampered copy"), LAB_BACKDOOR),
    ]
    if heldout is not None and Path(heldout).is_file():
        for case_id, backdoor, note in load_template_backdoors(heldout):
            copies.append((TemplateCase(case_id, folder / f"{case_id}.gguf", False, note), backdoor))
    return copies


def _write_copies(copies: list[tuple[TemplateCase, Backdoor | None]]) -> None:
    original = smollm2_file()
    template = chat_template(original)
    for case, backdoor in copies:
        case.path.parent.mkdir(parents=True, exist_ok=True)
        if backdoor is None:
            write_with_template(original, case.path, template, max_tensor_bytes=TAMPERED_TENSOR_BYTES)
        else:
            write_tampered(original, case.path, backdoor, max_tensor_bytes=TAMPERED_TENSOR_BYTES)


def judge_templates(cases: list[TemplateCase], answers: dict[str, object]) -> Check:
    """The publisher's template is trusted (``True``); every tampered one is not (``False``, or an
    error). ``answers`` maps case id to what ``template_is_trusted`` returned, or ``{"raised": name}``."""
    for case in cases:
        answer = answers.get(case.id)
        if isinstance(answer, dict) and answer.get("raised") == "NotImplementedError":
            return Check(False, "template_is_trusted is not written yet (it raised NotImplementedError)")
        if case.trusted and answer is not True:
            return Check(False, f"template_is_trusted did not trust {case.note} (it must return True)")
        if not case.trusted and answer is True:
            return Check(False, f"template_is_trusted trusted {case.note}, whose chat template was changed")
    return Check(True)


def template_answers(template_is_trusted: Callable[[str], object], cases: list[TemplateCase]) -> dict[str, object]:
    answers: dict[str, object] = {}
    for case in cases:
        try:
            answers[case.id] = template_is_trusted(str(case.path))
        except Exception as exc:  # an error distrusts the file (and is judged like False)
            answers[case.id] = {"raised": type(exc).__name__}
    return answers


def check_template_is_trusted(template_is_trusted: Callable[[str], object], cases: list[TemplateCase]) -> Check:
    return judge_templates(cases, template_answers(template_is_trusted, cases))
