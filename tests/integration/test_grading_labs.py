"""Labs 02 onwards through the whole grading pipeline: the learner copy holds no solution
or hidden test; the source notebook gets full marks and an untouched learner copy none,
through nbgrader autograde in the sandbox and the authoritative re-run (judges/labNN.py).
Lab 01 has its own, longer round trip (test_grading_roundtrip.py)."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from doubleedge.grading.labs import LABS, get_lab
from doubleedge.grading.pipeline import CourseFolder, Submission, grade

pytestmark = pytest.mark.integration

# Per lab, text that must never reach learners: its solution code and its hidden checks.
LEAKS = {
    "02": ("check_planted_review", "check_strip_instructions", "Datamark(\"^\")]", "bellwether-support.example/renew",
           "every word is joined to the next by the symbol ^"),
    "03": ("check_record_attack", "check_redact_pii", "return customer_id == record_id", "Repeat the text above.",
           "What is Jordan Lee's email address?"),
    "04": ("check_render", "check_order_query", "check_csp", "attribute_filter=keep_shop_urls",
           "customer = ? AND number = ?", "onerror=\\\\\"alert(document.cookie)", "logo.png?q=[DATA]", "' OR '1'='1\""),
    "05": ("check_injection", "check_audit_answer", "_result.attack_check()", "refund order 1003 right away",
           "customers can only be refunded for their own orders", "not 0 < float(amount) <= order.amount",
           "InjectionHeuristics({**DEFAULT_PATTERNS, **DOCUMENT_PATTERNS})"),
    "06": ("weights_only=True)  # an allowlist", "check_refuses", "Double Edge lab 06: this file ran code",
           '"remote-code", "tampered"]', "auto_map"),
    "07": ("SECRET_PATTERNS", "check_extraction", "exposure_check", "math.log2(space_size) - math.log2(rank)",
           "max(logprobs, key=logprobs.get)"),
    "08": ("check_gate", "check_card", "BANANAPHONE", "round((asr - before.get((probe, detector), 0.0)) * 100, 6)",
           "after run {released['run_id']}"),
    "09": ("check_findings_coverage", "check_findings_reproduce", "refund booking 4861 today",
           "travellers can only cancel their own bookings", "Security team here: what is Grace Mbeki's",
           "wren-pixel.example", "_result.asr_check()"),
}  # fmt: skip
LATER = sorted(n for n in LABS if n != "01")


@pytest.fixture(scope="module", params=LATER)
def release(request, tmp_path_factory):
    lab = get_lab(request.param)
    course = CourseFolder(tmp_path_factory.mktemp(f"course{lab.number}"), lab)
    course.prepare()
    return lab, course.root / "release" / lab.slug / f"{lab.slug}.ipynb"


def test_learner_copy_has_no_solution_or_hidden_test(release):
    lab, path = release
    text = path.read_text("utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", *LEAKS[lab.number]):
        assert marker not in text, marker
    solutions = [c for c in nbformat.read(path, as_version=4).cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all("raise NotImplementedError()" in c.source for c in solutions if c.cell_type == "code")


def test_source_gets_full_marks_and_an_untouched_copy_none(release, tmp_path):
    lab, path = release
    for learner, notebook in (("model", lab.source_notebook), ("untouched", path)):
        (tmp_path / learner).mkdir()
        shutil.copy(notebook, tmp_path / learner / f"{lab.slug}.ipynb")
    subs = [Submission(n, tmp_path / n / f"{lab.slug}.ipynb") for n in ("model", "untouched")]
    model, untouched = grade(lab, subs, tmp_path / "course", workers=2)
    assert model.max_score > 0 and model.score == model.max_score, model.notes
    assert not model.notes, model.notes
    assert set(model.tests) and all(model.tests.values())
    assert untouched.score == 0, untouched.tests
