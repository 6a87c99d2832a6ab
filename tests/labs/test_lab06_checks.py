"""Lab 06's pure checks: tables of answers and loader outcomes."""

import re

import nbformat
import pytest

from doubleedge.defenses import lab06 as solution
from doubleedge.grading import lab06
from doubleedge.grading.labs import LABS
from doubleedge.supplychain import COMMUNITY_VARIANTS, MARKER_TEXT, build_case, build_community_model
from doubleedge.supplychain.build import marker_text


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return lab06.reference_scan(tmp_path_factory.mktemp("scan"))


OWN = marker_text("0123456789abcdef", "alice")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (OWN, True),
        (f"  {OWN}\n", True),
        (MARKER_TEXT, False),  # the package's constant alone: what the old answer was
        (marker_text("0123456789abcdef", "bob"), False),  # another learner's text
        (OWN.replace("0123", "3210"), False),  # a proof for another nonce
        ("", False),
        ("payload ran", False),
        (None, False),
    ],
)
def test_check_marker(value, ok):
    assert bool(lab06.check_marker(value, "alice")) is ok


def test_the_marker_is_read_from_the_learners_own_file(tmp_path):
    """The lab's poisoned pickle writes a text that the check accepts, and a fresh build writes another."""
    import torch

    texts = []
    for build in ("first", "second"):
        hub = build_community_model(tmp_path / build)
        torch.load(hub.folder("pickle") / "pytorch_model.bin", weights_only=False)  # on purpose: the payload
        texts.append(hub.marker.read_text())
        assert lab06.check_marker(texts[-1]), texts[-1]
        assert texts[-1].encode() in (hub.folder("pickle") / "pytorch_model.bin").read_bytes()  # disassembly shows it
    assert texts[0] != texts[1]


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


def test_notebook_solution_matches_the_packaged_reference_solution():
    cell = next(c for c in nbformat.read(LABS["06"].source_notebook, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "safe_load")  # fmt: skip
    in_notebook = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n?", "", cell.source, flags=re.M)
    in_package = open(solution.__file__).read()
    assert in_notebook.strip() in in_package
