"""Contract tests over every discovered lab (doubleedge.labs): sources, solutions, lessons, held-out
sets, scans, targets and judges. A new lab package gets all of them by being found."""

import ast
import importlib
import json
import re

import nbformat
import pytest
import yaml

from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

LAB_LIST = list(LABS.values())


def _cells(lab):
    return nbformat.read(lab.source_notebook, as_version=4).cells


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_source_notebook_is_committed_without_outputs(lab):
    for cell in _cells(lab):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_graded_cells_are_well_formed(lab):
    meta = [c.metadata["nbgrader"] for c in _cells(lab) if "nbgrader" in c.metadata]
    ids = [m["grade_id"] for m in meta]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    assert "setup" in ids, "the grader runs the lab's setup cell before the learner's cells"
    tests = [m for m in meta if m["grade"] and not m["solution"]]
    assert tests and all(m["points"] > 0 and m["locked"] for m in tests)


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_every_test_cell_says_what_it_checks(lab):
    for cell in _cells(lab):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            assert cell.source.startswith('"""Check'), meta["grade_id"]


def _nav_entries(nav: list) -> dict[str, str]:
    """Every titled page of the nav: page -> title."""
    found = {}
    for item in nav:
        for title, value in item.items() if isinstance(item, dict) else ():
            found |= _nav_entries(value) if isinstance(value, list) else {value: title}
    return found


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_has_a_lesson_in_the_nav_under_its_title(lab):
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert _nav_entries(config["nav"]).get(f"{lab.slug}/index.md") == lab.label
    assert lab.lesson.is_file()


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_syllabus_links_the_lesson_under_its_title(lab):
    assert f"[{lab.label}]({lab.slug}/index.md)" in (REPO_ROOT / "course" / "syllabus.md").read_text("utf-8")


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_package_is_named_after_the_lab(lab):
    assert lab.package == f"doubleedge.labs.lab{lab.number}_{lab.slug[3:].replace('-', '_')}"
    assert lab.slug.startswith(f"{lab.number}-") and lab.source_notebook.is_file()
    assert importlib.import_module(lab.checks).LAB == lab.number
    assert lab.solution is None or importlib.import_module(lab.solution)


@pytest.mark.parametrize("lab", [lab for lab in LAB_LIST if lab.scan], ids=lambda lab: lab.slug)
def test_scan_is_the_labs_and_names_real_probes(lab):
    assert lab.scan.lab == lab.number and lab.scan.probes and len(set(lab.scan.probes)) == len(lab.scan.probes)
    for probe in lab.scan.probes:
        family, name = probe.split(".")
        course = family == "doubleedge" or family.startswith("doubleedge_")
        package = "doubleedge.scan.plugins.probes" if course else "garak.probes"
        assert hasattr(importlib.import_module(f"{package}.{family}"), name), probe
    assert lab.scan.course_plugins == any(p.startswith("doubleedge") for p in lab.scan.probes)


@pytest.mark.parametrize("lab", [lab for lab in LAB_LIST if lab.measure], ids=lambda lab: lab.slug)
def test_measured_lab_has_a_scan_and_names_its_ordinary_use(lab):
    assert lab.scan and lab.benign


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_target_builds_with_each_of_its_defenses(lab):
    from doubleedge.defenses import DEFENSES
    from doubleedge.labs import ChatTarget

    if not isinstance(lab.target, ChatTarget):
        assert f"Lab {lab.number}" in lab.target.message
        return
    defenses = lab.target.defenses or ("none", *([lab.defense] if lab.defense else []))
    assert lab.defense is None or lab.defense in (lab.target.defenses or DEFENSES)
    for defense in defenses:
        assert lab.target.build("reference", defense, "contract") is not None


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_hidden_text_is_in_the_source_notebook(lab):
    """What the learner copy must not hold is really in the source: else that check proves nothing."""
    source = "\n".join(cell.source for cell in _cells(lab))
    assert [text for text in lab.hidden if text not in source] == []


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_has_a_heldout_attack_set(lab):
    records = [json.loads(line) for line in lab.heldout_attacks.read_text().splitlines() if line.strip()]
    assert len(records) >= 20
    assert len({r["id"] for r in records}) == len(records)


def _definitions(source: str) -> dict[str, str]:
    """Top-level functions, classes and assignments of a module, each as its syntax tree's dump."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.dump(node)
    return found


def _solution_definitions(lab) -> dict[str, str]:
    """Top-level definitions of the notebook's solution cells, solution markers dropped."""
    found = {}
    for cell in _cells(lab):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            found |= _definitions(re.sub(r"^\s*### (BEGIN|END) SOLUTION\n?", "", cell.source, flags=re.M))
    return found


# Labs whose reference solution the package holds (doubleedge.defenses.labNN): learners read the
# notebook's solution cells, while --defense, the figures and the grading's reference use the package.
PACKAGED = [lab for lab in LAB_LIST if lab.solution]


@pytest.mark.parametrize("lab", PACKAGED, ids=lambda lab: lab.slug)
def test_notebook_solution_is_the_packaged_reference_solution(lab):
    """Everything the packaged solution defines is in the notebook's solution cells, identically.

    The package may add only what the lesson does not teach, named in its ``PACKAGE_ONLY``."""
    module = importlib.import_module(lab.solution)
    in_package = _definitions(open(module.__file__).read())
    in_notebook = _solution_definitions(lab)
    expected = set(in_package) - {"PACKAGE_ONLY"} - set(getattr(module, "PACKAGE_ONLY", ()))
    assert sorted(expected - set(in_notebook)) == []
    assert [name for name in sorted(expected) if in_notebook[name] != in_package[name]] == []


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_has_a_judge_for_every_graded_test_cell(lab):
    import inspect

    from doubleedge.grading.judges import judge_for

    judge = judge_for(lab.number)
    source = inspect.getsource(judge)
    tests = [c.metadata["nbgrader"]["grade_id"] for c in _cells(lab)
             if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]  # fmt: skip
    assert callable(judge.baseline) and callable(judge.judge)
    assert [t for t in tests if f'"{t}"' not in source] == []  # the judge decides every test cell
