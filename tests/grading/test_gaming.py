"""Each lab graded as one class, for real: the lab's source notebook (the reference solution),
an untouched learner copy and the lab's gaming cases (gaming/cases.py), in one grading run per
lab (only the labs a selection needs, so ``-k 09`` grades the capstone alone).

The reference solution gets full marks (the written answers wait for a person), the untouched
copy none, the learner copy holds no solution or hidden test, and each gaming case loses the
test it tried to win, with a reason that quotes nothing held out."""

from __future__ import annotations

import nbformat
import pytest
from gaming.cases import CASES, FULL, build

from doubleedge.grading.course import find_hidden, hidden_material
from doubleedge.grading.pipeline import CourseFolder, find_submissions, grade_prepared
from doubleedge.grading.sandbox import make_sandbox, unavailable_for_tests
from doubleedge.labs import LABS, get_lab
from doubleedge.realmodel import SKIPPED, SKIPPED_FILES

pytestmark = pytest.mark.integration

REFERENCE, UNTOUCHED = "reference", "untouched"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, class_baseline):
    """``graded(lab)``: the lab's course folder and its rows by learner, graded once."""
    done = {}

    def grade(number: str):
        if number not in done:
            lab = get_lab(number)
            root = tmp_path_factory.mktemp(f"class-{number}")
            course = CourseFolder(root / "course", lab)
            course.prepare()
            release = course.root / "release" / lab.slug / f"{lab.slug}.ipynb"
            for learner, notebook in ((REFERENCE, lab.source_notebook), (UNTOUCHED, release)):
                (root / "submissions" / learner).mkdir(parents=True)
                (root / "submissions" / learner / f"{lab.slug}.ipynb").write_bytes(notebook.read_bytes())
            if lab.hints is not None:  # the reference learner took one hint; the grade sheet counts it
                (root / "submissions" / REFERENCE / "hints.json").write_text('["L5"]')
            for case in (c for c in CASES if c.lab == number):
                build(case, root / "submissions" / case.learner)
            rows = grade_prepared(course, find_submissions(root / "submissions", lab), class_baseline(number),
                                  workers=workers(number), box=make_sandbox("auto"))  # fmt: skip
            done[number] = (course, {r.learner: r for r in rows})
        return done[number]

    return grade


def workers(lab: str) -> int:
    """Two learners at a time, as a class is graded; Lab 07's class one at a time. Its gaming case
    hardens as the reference learner does, and two checkers that run at the same moment each train
    that model (a checker reads only the models the grader holds, and the grader takes a checker's
    models when its learner is done), so, one after the other, the case's checker reads the model
    that the reference learner's checker trained: one training less (about 36 CPU-seconds)."""
    return 1 if lab == "07" else 2


@pytest.mark.parametrize("lab", sorted(LABS))
def test_learner_copy_has_no_solution_or_hidden_test(graded, lab):
    course, _ = graded(lab)
    spec = get_lab(lab)
    cells = nbformat.read(course.root / "release" / spec.slug / f"{spec.slug}.ipynb", as_version=4).cells
    text = "\n".join(c.source for c in cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", *spec.hidden):
        assert marker not in text, marker
    solutions = [c for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all("raise NotImplementedError()" in c.source for c in solutions if c.cell_type == "code")
    assert all(c.source == "YOUR ANSWER HERE" for c in solutions if c.cell_type == "markdown")  # no model answers


@pytest.mark.parametrize("lab", sorted(LABS))
def test_reference_solution_gets_full_marks_and_an_untouched_copy_none(graded, lab):
    _, rows = graded(lab)
    model, untouched = rows[REFERENCE], rows[UNTOUCHED]
    written = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in nbformat.read(get_lab(lab).source_notebook, 4).cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("solution")}  # fmt: skip
    assert model.manual == dict.fromkeys(written) and model.manual_pending == sum(written.values())  # for a person
    assert model.max_score > 0 and model.score == model.max_score - model.manual_pending, model.notes
    assert not model.notes, model.notes
    assert set(model.tests) and all(model.tests.values())
    assert model.max_score == FULL.get(lab, model.max_score)
    assert untouched.score == 0, untouched.tests


@pytest.mark.parametrize("lab", sorted(LABS))
def test_the_reference_solution_runs_top_to_bottom_in_the_graded_kernel(graded, lab):
    """The source notebook (the reference learner's submission) ran every cell without an error
    in the real Jupyter kernel that graded it, hidden tests included. This is the course's
    notebook-execution test: running each source notebook once more, outside the sandbox, would
    repeat the same work (tests/integration/test_notebooks_execute.py keeps only what differs)."""
    course, _ = graded(lab)
    feedback = nbformat.read(course.autograded_dir(REFERENCE) / f"{get_lab(lab).slug}.ipynb", as_version=4)
    ran = [c for c in feedback.cells if c.cell_type == "code" and c.source.strip()]
    assert ran and all(c.execution_count for c in ran), [c.id for c in ran if not c.execution_count]
    errors = [(c.id, o.ename, o.evalue) for c in ran for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    for cell in (c for c in ran if c.get("id") == "real-model"):  # the real-model comparison is not graded
        assert "".join(o.get("text", "") for o in cell.outputs) == SKIPPED + "\n"


def real_file_cells(notebook) -> list:
    """The ungraded cells that open the real model's files (ids ``real-file-*``)."""
    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(notebook, as_version=4)
    return [c for c in notebook.cells if c.get("id", "").startswith("real-file-")]


@pytest.mark.parametrize("lab", [n for n in sorted(LABS) if real_file_cells(get_lab(n).source_notebook)])
def test_the_graded_kernel_opens_no_real_model_file(graded, lab):
    """The ungraded cells that open SmolLM2's files print one note in the feedback, and open nothing
    (they cost a minute per learner, and ran out of the kernel's memory)."""
    course, _ = graded(lab)
    spec = get_lab(lab)
    feedback = nbformat.read(course.autograded_dir(REFERENCE) / f"{spec.slug}.ipynb", as_version=4)
    cells = real_file_cells(feedback)
    assert len(cells) == len(real_file_cells(spec.source_notebook))
    for cell in cells:
        assert "".join(o.get("text", "") for o in cell.outputs) == SKIPPED_FILES + "\n", cell.id


@pytest.mark.parametrize("lab", ["01", "02"])  # the labs' garak scans of the bot, unhardened and hardened
def test_the_graded_kernel_draws_no_progress_bar(graded, lab):
    """A widget message per prompt, for a bar that nobody watches, cost the kernel and the grader."""
    course, _ = graded(lab)
    feedback = nbformat.read(course.autograded_dir(REFERENCE) / f"{get_lab(lab).slug}.ipynb", as_version=4)
    outputs = [o for cell in feedback.cells if cell.cell_type == "code" for o in cell.outputs]
    assert len(outputs) > 10  # the notebook ran
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.learner)
def test_each_gaming_case_loses_what_it_tried_to_win(graded, case):
    if problem := unavailable_for_tests():
        pytest.skip(f"needs bubblewrap (a case recognises the sandbox): {problem}")
    course, rows = graded(case.lab)
    row = rows[case.learner]
    assert row.score + row.manual_pending == case.score < FULL[case.lab], row.notes
    assert row.tests[case.target] == 0, row.tests
    assert any(case.reason in note for note in row.notes), row.notes
    assert not find_hidden("\n".join(row.notes), hidden_material(course, get_lab(case.lab)))


@pytest.mark.parametrize("lab", [n for n in sorted(LABS) if get_lab(n).hints is not None])
def test_the_grade_sheet_counts_the_hints_a_learner_took(graded, lab):
    _, rows = graded(lab)
    assert rows[REFERENCE].metrics["hints_used"] == 1
    assert rows[UNTOUCHED].metrics["hints_used"] == 0


@pytest.mark.parametrize("lab", ["07"])  # the lab whose notebook retrains; named, so it joins that lab's class
def test_the_graded_kernel_leaves_the_hardened_model_to_the_checker(graded, lab):
    """Lab 07's cells that retrain and re-scan the learner's hardened model (50 CPU-seconds per learner)
    print one note in the graded kernel, which runs for the feedback alone: the checker trains that
    model itself, on the held-out canaries (the test below). Outside the grader they run
    (tests/integration/test_notebooks_execute.py)."""
    from doubleedge.grading.lab07 import GRADER_RETRAINS

    course, _ = graded(lab)
    feedback = nbformat.read(course.autograded_dir(REFERENCE) / f"{get_lab(lab).slug}.ipynb", as_version=4)
    skipping = {c.id: c for c in feedback.cells if c.cell_type == "code" and "if graded_kernel()" in c.source}
    assert sorted(skipping) == ["lab07-23", "lab07-24", "lab07-27"]
    for cell in skipping.values():
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert GRADER_RETRAINS + "\n" in text and "perplexity" not in text, (cell.id, text)
        assert all(o.output_type == "stream" for o in cell.outputs), cell.id  # no figure
    ratio = next(c for c in feedback.cells if c.get("id") == "lab07-25")
    assert "perplexity ratio" not in "".join(o.get("text", "") for o in ratio.outputs)


@pytest.mark.parametrize("lab", ["07"])  # the lab whose checker trains; named, so it joins that lab's class
def test_the_grader_keeps_the_model_a_checker_trained(graded, lab):
    """Lab 07's checker trains each learner's hardened model on the held-out canaries, and may write
    only in its result folder: the grader adopts the model from there, so that a regrade of the
    class reads it instead of training it again (memorization/train.py, ``adopt_trained``)."""
    from doubleedge.defenses.lab07 import TRAINING, harden_corpus
    from doubleedge.grading import lab07
    from doubleedge.memorization.train import training_key
    from doubleedge.paths import trained_dir

    graded(lab)
    canaries = lab07.grading_canaries()
    key = training_key(harden_corpus(lab07.attack_corpus(canaries)), lab07.training_config(TRAINING))
    assert (trained_dir() / f"{key}.safetensors").is_file()


@pytest.mark.parametrize(("name", "error"), [
    ("import-reference-by-name", ("ModuleNotFoundError", "No module named 'doubleedge.defenses.lab01'")),
    ("read-reference-file", ("FileNotFoundError", "No such file or directory")),
])  # fmt: skip
def test_the_feedback_kernel_cannot_reach_the_reference_solution_either(graded, name, error):
    """nbgrader's kernel runs the submitted notebook for the feedback preview: there too the
    reference solution is out of reach, so it cannot be copied into an output."""
    if problem := unavailable_for_tests():
        pytest.skip(f"needs bubblewrap: {problem}")
    course, _ = graded("01")
    case = next(c for c in CASES if c.name == name)
    notebook = course.autograded_dir(case.learner) / f"{get_lab('01').slug}.ipynb"
    outputs = [o for c in nbformat.read(notebook, as_version=4).cells for o in c.get("outputs", [])]
    errors = [(o.ename, o.evalue) for o in outputs if o.output_type == "error"]
    assert any(kind == error[0] and error[1] in message for kind, message in errors), errors
