"""Contract tests over every lab: sources, solutions, lessons and held-out sets."""

import ast
import json
import re

import nbformat
import pytest
import yaml

from doubleedge.defenses import lab01 as lab01_solution
from doubleedge.defenses import lab02 as lab02_solution
from doubleedge.defenses import lab03 as lab03_solution
from doubleedge.defenses import lab05 as lab05_solution
from doubleedge.defenses import lab09 as lab09_solution
from doubleedge.grading.labs import LABS
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


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_has_a_lesson_in_the_nav(lab):
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    lesson = f"{lab.slug}/index.md"
    assert lesson in json.dumps(config["nav"])
    assert (REPO_ROOT / "course" / lesson).is_file()


@pytest.mark.parametrize("lab", LAB_LIST, ids=lambda lab: lab.slug)
def test_lab_has_a_heldout_attack_set(lab):
    records = [json.loads(line) for line in lab.heldout_attacks.read_text().splitlines() if line.strip()]
    assert len(records) >= 20
    assert len({r["id"] for r in records}) == len(records)


def _definitions(source: str) -> dict[str, str]:
    tree = ast.parse(source)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = ast.dump(node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.dump(node)
    return found


# Labs whose reference solution is also served by the package (``--defense NAME``).
PACKAGED_SOLUTIONS = {
    "01": (lab01_solution, ("HARDENED_SYSTEM_PROMPT", "leaks_secret", "build_defense")),
    "02": (lab02_solution, ("HARDENED_SYSTEM_PROMPT", "strip_instructions", "build_defense")),
    "03": (lab03_solution, ("HARDENED_SYSTEM_PROMPT", "may_see", "redact_pii", "build_defense")),
    "05": (lab05_solution, ("tool_policy", "build_agent_defense")),
    "09": (
        lab09_solution,
        (
            "HARDENED_SYSTEM_PROMPT",
            "may_see",
            "strip_instructions",
            "build_defense",
            "tool_policy",
            "build_agent_defense",
        ),
    ),
}


@pytest.mark.parametrize("number", sorted(PACKAGED_SOLUTIONS))
def test_notebook_solution_matches_the_packaged_reference_solution(number):
    """The packaged solution must be exactly what the notebook's solution cell builds."""
    module, names = PACKAGED_SOLUTIONS[number]
    cell = next(c for c in _cells(LABS[number]) if c.metadata.get("nbgrader", {}).get("grade_id") == "hardening")
    solution = re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", cell.source, flags=re.M)
    in_notebook = _definitions(solution)
    in_package = _definitions(open(module.__file__).read())
    for name in names:
        assert in_notebook[name] == in_package[name], f"{name} differs between the notebook and the package"


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
