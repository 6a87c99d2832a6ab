"""The instructor kit: answer keys outside the site, slide decks cut from the lessons, and the
troubleshooting pages quoting what the code really prints.

The decks in a built site (each lesson has one, nothing loads from off the machine) and the
learner site's freedom from solutions are checked on the one site build of ``test_site.py``.
"""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import nbformat
import pytest

from doubleedge import answer_keys, cli, site_content, slides
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT
from doubleedge.scan.report import ScanError, read_report
from doubleedge.scan.runner import preflight
from doubleedge.start import serve_site

COURSE = REPO_ROOT / "course"
TROUBLESHOOTING = [COURSE / "learners" / "troubleshooting.md", COURSE / "instructors" / "troubleshooting.md"]
QUOTE = re.compile(r"^```text\n(.*?)\n```", re.MULTILINE | re.DOTALL)


# --- answer keys ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keys") / "instructor-keys"
    assert cli.main(["answer-keys", "--out", str(out)]) == 0  # the documented command
    return out


def solution_cells(source: Path) -> list[str]:
    """Each solution cell as a reader sees it: code as written, markdown as rendered (no ** or `)."""
    import markdown

    cells = nbformat.read(source, as_version=4).cells
    return [site_content.visible_text(markdown.markdown(c.source)) if c.cell_type == "markdown" else c.source
            for c in cells if c.metadata.get("nbgrader", {}).get("solution")]  # fmt: skip


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.number)
def test_the_answer_key_holds_every_solution_cell_and_hidden_test(keys, lab):
    page = site_content.visible_text((keys / f"{lab.slug}.html").read_text("utf-8"))
    cells = solution_cells(lab.source_notebook)
    assert cells, lab.slug
    shown = site_content.normalized(page)
    assert [c[:60] for c in cells if site_content.normalized(c) not in shown] == []
    lines = site_content.source_only_lines(lab.source_notebook)  # hidden tests and markers included
    assert site_content.leaks(page, lines) == sorted(lines)
    assert (keys / f"{lab.slug}.ipynb").read_bytes() == lab.source_notebook.read_bytes()
    assert answer_keys.BANNER in page
    assert f'href="{lab.slug}.html"' in (keys / "index.html").read_text("utf-8")


@pytest.mark.parametrize("inside", ["course", "course/instructors", "site", "site/keys"])
def test_answer_keys_refuse_a_folder_that_is_published(inside, capsys):
    assert cli.main(["answer-keys", "--out", str(REPO_ROOT / inside)]) == 2
    assert "answer keys must not go into" in capsys.readouterr().err


# --- slides --------------------------------------------------------------------------------

LESSON = """# 01 A lesson

!!! info "Time"

    - Teaching: 25 minutes

!!! question "Questions"

    - Why?

## First section

!!! note "A box first"

    Not the lead.

The lead paragraph, with [a link](../02-other/index.md#part) and
a second line.

More text only in the notes.

### A subsection

Its own lead.

??? success "Solution"

    Hidden on the slide.

!!! success "Key points"

    - One stream of text.

## Further reading

- Left out.
"""


def test_a_lesson_is_cut_into_title_boxes_sections_and_key_points():
    title, boxes, parts = slides.split_lesson(LESSON)
    assert title == "01 A lesson"
    assert [b.title for b in boxes] == ["Time", "Questions"]
    assert [p.title for p in parts] == ["First section", "Key points"]
    assert [s.title for s in parts[0].below] == ["A subsection"]
    assert (
        slides.lead(parts[0].body) == "The lead paragraph, with [a link](../02-other/index.md#part) and\na second line."
    )
    assert slides.lead(parts[0].below[0].body) == "Its own lead."
    assert "One stream of text." in parts[1].body


def test_a_deck_shows_leads_and_keeps_the_section_in_the_notes(tmp_path):
    lesson = tmp_path / "01-a-lesson" / "index.md"
    lesson.parent.mkdir()
    lesson.write_text(LESSON)
    html = slides.deck(lesson).generate_html()
    assert "<h1>01 A lesson</h1>" in html and "Teaching: 25 minutes" in html
    assert 'href="../../01-a-lesson/../02-other/#part"' in html  # from generated/slides/ to the lesson's link target
    notes = re.findall(r'<aside class="notes">(.*?)</aside>', html, re.DOTALL)
    assert any("More text only in the notes." in n for n in notes)
    slides_only = re.sub(r'<aside class="notes">.*?</aside>', "", html, flags=re.DOTALL)
    assert "More text only in the notes." not in slides_only and "Hidden on the slide." not in slides_only
    assert "Left out." not in html


def test_every_lesson_follows_the_skeleton_the_decks_rely_on():
    for lesson in slides.lessons(COURSE):
        title, boxes, parts = slides.split_lesson(lesson.read_text("utf-8"))
        assert title[:2] == lesson.parent.name[:2] or "Capstone" in title, lesson
        assert {"Time", "Objectives"} <= {b.title for b in boxes}, lesson
        assert parts[-1].title == slides.KEY_POINTS and len(parts) > 4, lesson
        assert all(slides.lead(p.body) or p.below for p in parts), lesson


# --- troubleshooting: each quoted message is what the code prints --------------------------


def printed_by_the_kit() -> list[re.Pattern]:
    """Every string literal of src/doubleedge as a pattern (an f-string's fields match anything)."""
    patterns = []
    for path in (REPO_ROOT / "src" / "doubleedge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in node.values]
                patterns.append(re.compile("".join(parts)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 15:
                patterns.append(re.compile(re.escape(node.value)))
    return patterns


def test_every_message_the_pages_quote_is_printed_by_the_kit_or_by_python():
    patterns = printed_by_the_kit()
    python_errors = {"OSError: [Errno 98] Address already in use"}  # the next test makes it happen
    quotes = [q for page in TROUBLESHOOTING for q in QUOTE.findall(page.read_text("utf-8"))]
    assert len(quotes) >= 8
    for quote in quotes:
        first = quote.splitlines()[0]
        assert first in python_errors or any(p.fullmatch(first) for p in patterns), first


def test_a_port_in_use_stops_the_site_with_the_quoted_error():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        with pytest.raises(OSError) as raised:
            serve_site(REPO_ROOT / "course", holder.getsockname()[1])
        assert f"{type(raised.value).__name__}: {raised.value}" == "OSError: [Errno 98] Address already in use"
    finally:
        holder.close()


def test_an_aborted_garak_run_is_caught_with_the_quoted_message(tmp_path):
    """garak exits 0 after an abort; its report then lacks the completion record."""
    report = tmp_path / "reports" / "scan.report.jsonl"
    report.parent.mkdir()
    report.write_text('{"entry_type": "start_run setup"}\n{"entry_type": "init", "garak_version": "0.17.1"}\n')
    with pytest.raises(
        ScanError, match=r"^garak run did not complete \(no completion record in .*scan\.report\.jsonl\)$"
    ):
        read_report(report)


def test_a_bot_that_does_not_answer_is_caught_before_the_scan():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    quoted = "did not answer a test message: <urlopen error [Errno 111] Connection refused>"
    with pytest.raises(ScanError, match=rf"^the bot at http://127\.0\.0\.1:{port}/chat {re.escape(quoted)}$"):
        preflight(f"http://127.0.0.1:{port}/chat", timeout=5)
