"""Lab 06's pure checks: tables of answers and loader outcomes."""

import pickletools
import re
import zipfile
from pathlib import Path

import pytest
import torch

from doubleedge.defenses import lab06 as solution
from doubleedge.grading import lab06
from doubleedge.supplychain import COMMUNITY_VARIANTS, MARKER_TEXT, build_case, build_community_model
from doubleedge.supplychain.build import marker_text


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return lab06.reference_scan(tmp_path_factory.mktemp("scan"))


def computed_from_the_file(model_file: str, marker_file: str) -> str:
    """The shortcut: the nonce read from the file, the code computed with the learner's own key."""
    nonce = re.search(rb"proof ([0-9a-f]{16})", Path(model_file).read_bytes()).group(1).decode()
    return marker_text(nonce, "alice")


def disassembled(model_file: str, marker_file: str) -> str:
    """The other honest way: the text read out of the pickle's instructions, nothing run."""
    with zipfile.ZipFile(model_file) as archive:
        program = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    strings = [arg for _, arg, _ in pickletools.genops(program) if isinstance(arg, str)]
    return next(found.group(1) for s in strings if (found := re.search(r"\.write\('(.*)'\)$", s)))


def test_read_marker_passes_when_it_reads_the_file_it_is_given(tmp_path):
    assert lab06.check_read_marker(solution.read_marker, tmp_path / "loaded", "alice")
    assert lab06.check_read_marker(disassembled, tmp_path / "disassembled", "alice")


def test_a_text_computed_or_copied_in_the_learners_process_fails(tmp_path):
    """The grader's file writes a proof derived from the grading secret, never the learner's key."""
    own_hub = build_community_model(tmp_path / "hub")
    torch.load(own_hub.folder("pickle") / "pytorch_model.bin", weights_only=False)  # on purpose: the payload
    own_text = own_hub.marker.read_text()
    shortcuts = {
        "computed": computed_from_the_file,
        "own hub": lambda model_file, marker_file: own_text,
        "constant": lambda model_file, marker_file: MARKER_TEXT,
    }
    for name, shortcut in shortcuts.items():
        check = lab06.check_read_marker(shortcut, tmp_path / name, "alice")
        assert not check and "did not return the text that the payload of the file it was given wrote" in check.reason
        assert "DE-FAKE" not in check.reason and "proof" not in check.reason, check.reason


def test_the_grading_text_is_not_the_learners_and_changes_every_build(tmp_path):
    assert lab06.grading_marker_text("0123456789abcdef", "alice") != marker_text("0123456789abcdef", "alice")
    texts = []
    for build in ("first", "second"):
        lab06.check_read_marker(lambda model_file, marker_file: texts.append(Path(model_file).read_bytes()) or "",
                                tmp_path / build, "alice")  # fmt: skip
    assert texts[0] != texts[1]  # a fresh nonce: a text seen in one run is no answer in the next


@pytest.mark.parametrize(
    ("read_marker", "reason"),
    [
        ("a text", "read_marker must be a function: read_marker(model_file, marker_file) returns"),
        (
            lambda model_file, marker_file: Path(marker_file).read_text(),  # the payload never ran
            "read_marker raised FileNotFoundError on the poisoned file the grader built",
        ),
        (lambda model_file, marker_file: None, "did not return the text"),
    ],
)
def test_a_wrong_read_marker_says_what_to_change(tmp_path, read_marker, reason):
    check = lab06.check_read_marker(read_marker, tmp_path, "alice")
    assert not check and reason in check.reason, check.reason


@pytest.mark.parametrize(
    ("flagged", "name", "ok"),
    [
        (["pickle/pytorch_model.bin"], "builtins.exec", True),
        (["pickle/pytorch_model.bin"], "__builtin__.exec", True),
        (["/pickle/pytorch_model.bin"], "exec", True),
        (["pickle/pytorch_model.bin", "safetensors/model.safetensors"], "builtins.exec", False),
        ([], "builtins.exec", False),
        (["pickle/pytorch_model.bin"], "os.system", False),
        ("pickle/pytorch_model.bin", "builtins.exec", False),
    ],
)
def test_check_scan_findings(flagged, name, ok, scan):
    assert bool(lab06.check_scan_findings(flagged, name, scan)) is ok


@pytest.mark.parametrize(("value", "ok"), [(["remote-code", "tampered"], True), (("tampered", "remote-code"), True),
                                           (["remote-code"], False), (["pickle", "remote-code", "tampered"], False),
                                           ("remote-code", False)])  # fmt: skip
def test_check_blind_spots(value, ok):
    assert bool(lab06.check_blind_spots(value)) is ok


def _cases(tmp_path):
    return [build_case(spec, tmp_path) for spec in COMMUNITY_VARIANTS.values()]


def test_judges_on_outcomes_alone(tmp_path):
    cases = _cases(tmp_path)
    clean = next(c for c in cases if c.expect == "load")
    right = {c.id: {"refused": "E"} for c in cases} | {clean.id: {"loaded": clean.expected}}
    none_ran = {c.id: False for c in cases}
    assert lab06.judge_refusals(cases, right, none_ran) and lab06.judge_loads(cases, right, none_ran)
    # refusing everything: safe, but the clean model does not load
    refuse_all = {c.id: {"refused": "E"} for c in cases}
    assert lab06.judge_refusals(cases, refuse_all, none_ran)
    assert not lab06.judge_loads(cases, refuse_all, none_ran)
    # loading the tampered file
    tampered = next(c for c in cases if c.id == "tampered")
    loaded = right | {tampered.id: {"loaded": clean.expected}}
    assert not lab06.judge_refusals(cases, loaded, none_ran)
    # a payload that ran, even if the loader then raised
    assert not lab06.judge_refusals(cases, right, none_ran | {"pickle": True})
    # wrong tensors
    wrong = right | {clean.id: {"loaded": {"x": ["float32", [1], "0"]}}}
    assert "other tensors" in lab06.judge_loads(cases, wrong, none_ran).reason
    assert not lab06.judge_loads(cases, right | {clean.id: {"invalid": "no"}}, none_ran)


def test_outcomes_of_a_broken_loader_are_reported_not_raised(tmp_path):
    cases = _cases(tmp_path)

    def broken(path, sha):
        return "not a dict"

    assert "dict of tensors" in lab06.check_loads(broken, cases).reason
