"""One nbgrader process per grading worker (grading/autograder.py), on the toy lab: it grades as
the ``nbgrader`` command does, a notebook over its time limit gets the command's note and takes
the whole process down with it, and the next learner is graded by a new process."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from doubleedge import labs
from doubleedge.grading import pipeline, sandbox
from doubleedge.grading.sandbox import Limits, Sandbox, unavailable_for_tests
from doubleedge.labs import discover

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(unavailable_for_tests()), reason=f"needs bubblewrap: {unavailable_for_tests()}"),
]

TOYLAB = Path(__file__).parents[1] / "fixtures" / "toylab"
LIMITS = Limits(cell_seconds=30, notebook_seconds=300, call_seconds=5, run_seconds=90)  # room on a busy machine
# The notebook's limit well under a cell's, so that a sleeping cell stops the whole notebook.
HANG_LIMITS = Limits(cell_seconds=30, notebook_seconds=15, call_seconds=5, run_seconds=90)


@pytest.fixture
def worker(monkeypatch, tmp_path):
    monkeypatch.setenv("DOUBLEEDGE_LAB_PATH", str(TOYLAB))
    monkeypatch.setitem(labs.LABS, "99", discover()["99"])
    sandbox.python_paths.cache_clear()  # the sandboxes must see the toy lab's folder
    course = pipeline.CourseFolder(tmp_path / "course", labs.LABS["99"])
    course.prepare()
    copy = course.worker_copy(0)
    yield copy
    copy.close()
    sandbox.python_paths.cache_clear()


def submit(
    worker: pipeline.CourseFolder, learner: str, solution: str | None, tmp_path: Path, limits: Limits = LIMITS
) -> pipeline.Outcome:
    notebook = nbformat.read(worker.lab.source_notebook, as_version=4)
    for cell in notebook.cells:
        if solution is not None and cell.metadata.get("nbgrader", {}).get("grade_id") == "shout":
            cell.source = solution
    path = tmp_path / "in" / learner / f"{worker.lab.slug}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    submission = pipeline.Submission(learner, path)
    return pipeline.grade_in(worker, submission, None, tmp_path / "scratch" / learner, Sandbox(limits))


def autograde_command(self, learner: str, env: dict, timeout: float):
    """What grading did before: the ``nbgrader autograde`` command, one process per submission."""
    return pipeline.run_nbgrader(self.root, ("autograde", self.lab.slug, "--student", learner, "--force"), env, timeout)


def test_same_outcome_as_the_nbgrader_command(worker, tmp_path, monkeypatch):
    kept = submit(worker, "kept", None, tmp_path)
    assert kept.nbgrader_scores == {"test_shout": 2.0} and kept.passed == {"test_shout": True}, kept
    assert kept.autograded is not None and not kept.notes, kept
    monkeypatch.setattr(pipeline.CourseFolder, "autograde", autograde_command)
    command = submit(worker, "command", None, tmp_path)
    assert (command.nbgrader_scores, command.passed, command.notes) == (kept.nbgrader_scores, kept.passed, kept.notes)


def test_a_notebook_over_its_limit_kills_the_process_and_the_next_learner_gets_a_new_one(worker, tmp_path):
    first = submit(worker, "first", None, tmp_path)
    process = worker._autograder.process
    hung = submit(worker, "hung", "import time\ntime.sleep(600)", tmp_path, HANG_LIMITS)
    assert "autograde: the notebook did not finish within 15 s (no notebook feedback)" in hung.notes, hung.notes
    assert hung.autograded is None
    assert process.poll() is not None and worker._autograder.process is None
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(process.pid, 0)
    after = submit(worker, "after", None, tmp_path)
    assert worker._autograder.process.pid != process.pid
    assert (after.nbgrader_scores, after.passed, after.notes) == (first.nbgrader_scores, first.passed, first.notes)


def test_a_failed_or_ended_process_is_not_reused(worker, tmp_path):
    first = submit(worker, "first", None, tmp_path)
    process = worker._autograder.process
    done = worker.autograde("nobody-submitted", {}, 60)  # no such submission: nbgrader fails
    assert done.returncode == 1 and not done.timed_out and "nobody-submitted" in done.stderr, done
    assert process.poll() is not None and worker._autograder.process is None
    assert submit(worker, "after", None, tmp_path).passed == first.passed
    worker._autograder.process.kill()  # ended between two runs: the next run starts a new one
    worker._autograder.process.wait()
    again = submit(worker, "again", None, tmp_path)
    assert (again.nbgrader_scores, again.passed, again.notes) == (first.nbgrader_scores, first.passed, first.notes)
