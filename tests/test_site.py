"""The course site builds with MkDocs in strict mode, with its measured charts and read-only labs.

One real ``mkdocs build --strict`` (hooks included) with an empty cache folder, so the build
makes the learner copies itself with nbgrader; then the output is read file by file.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from doubleedge import figures, site_hooks, slides
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

TEXT_SUFFIXES = {".html", ".json", ".ipynb", ".js", ".xml", ".css", ".txt", ".md"}
# Whatever the build does, these never reach a learner (the sources' own markers).
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def build(dest: Path, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DOUBLEEDGE_CACHE=str(cache))
    mkdocs = str(Path(sys.executable).with_name("mkdocs"))
    return subprocess.run([mkdocs, "build", "--strict", "-d", str(dest)], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env, timeout=900)  # fmt: skip


def built_names() -> set[str]:
    """Names of what the build generates: none of them may appear in course/."""
    charts = figures.charts({name: figures.load(name) for name in figures.SETS})
    return set(charts) | {site_hooks.NOTEBOOK_PAGE} | {f"{lab.slug}.ipynb" for lab in LABS.values()}


def generated_in_course() -> list[Path]:
    names = built_names()
    return [p for p in (REPO_ROOT / "course").rglob("*") if p.name in names]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("site") / "site"
    done = build(dest, tmp_path_factory.mktemp("cache"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert generated_in_course() == [], "the build writes into the site, never into course/"
    return dest


def readable_text(path: Path) -> str:
    """What a file shows or ships: HTML without tags (code is split into highlighting spans),
    JSON as its strings (the search index escapes quotes), notebooks as their cells."""
    raw = path.read_text("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        return site_hooks.notebook_text(path)
    if path.suffix == ".json":
        strings: list[str] = []

        def walk(value: object) -> None:
            if isinstance(value, str):
                strings.append(value)
            elif isinstance(value, dict):
                list(map(walk, value.values()))
            elif isinstance(value, list):
                list(map(walk, value))

        walk(json.loads(raw))
        raw = "\n".join(strings)
    return html.unescape(re.sub(r"<[^>]+>", "", raw)) + "\n" + raw


def source_only() -> set[str]:
    return {line for lab in LABS.values() for line in site_hooks.source_only_lines(lab.source_notebook)}


def test_mkdocs_strict_build_is_offline_safe(site):
    assert (site / "01-prompt-injection" / "index.html").is_file()
    html_text = (site / "index.html").read_text()
    assert "fonts.googleapis.com" not in html_text  # offline-safe theme


def test_the_build_draws_every_chart_from_the_measured_records(site):
    records = {name: figures.load(name) for name in figures.SETS}
    for name in figures.charts(records):
        png = (site / "figures" / name).read_bytes()
        assert png.startswith(b"\x89PNG"), name


def test_measured_tables_replace_their_markers(site):
    levels = (site / "target" / "defense-levels" / "index.html").read_text()
    for level in figures.load("levels")["levels"]:
        assert f"{level['overall_attack_success_rate']:.1%}" in levels
    labs = (site / "target" / "labs-measured" / "index.html").read_text()
    assert all(f"<td>{lab.number} {lab.title}" in labs for lab in [*figures.measured_labs(), LABS["07"]])
    lesson07 = (site / "07-memorization" / "index.html").read_text()
    assert "DP-SGD, noise 1.0" in lesson07 and "figures/exposure.png" in lesson07
    quoted = figures.values({name: figures.load(name) for name in figures.SETS})
    assert f"held-out chats is {quoted['memorization-perplexity-unhardened']}." in " ".join(lesson07.split())
    for number, lab in figures.load("layers")["labs"].items():
        lesson = " ".join((site / LABS[number].slug / "index.html").read_text().split())
        for measured in lab["layers"].values():
            cells = (f'<td style="text-align: right;">{measured[f]:.0%}</td>' for f in ("garak_asr", "heldout_asr"))
            assert " ".join(cells) in lesson, (number, measured["label"])
    ladder = (site / "10-ladder" / "index.html").read_text()
    assert all(t["source"] in html.unescape(ladder) for t in figures.load("ladder")["techniques"])
    for page in site.rglob("*.html"):
        assert "<!-- measured:" not in page.read_text(), page


class Page:
    class file:
        src_uri = "test/index.md"


def test_a_marker_inside_a_sentence_becomes_the_figure(monkeypatch):
    monkeypatch.setattr(site_hooks, "_tables", {"t": "| a |\n| --- |\n| 1 |\n"})
    monkeypatch.setattr(site_hooks, "_values", {"ppl": "1.22"})
    text = "Perplexity is <!-- measured:ppl -->.\n  <!-- measured:t -->\n<!-- measured:ppl -->\n"
    done = site_hooks.on_page_markdown(text, Page, None, None)
    assert done == "Perplexity is 1.22.\n  | a |\n  | --- |\n  | 1 |\n1.22\n"
    with pytest.raises(site_hooks.PluginError, match="no measured table or figure 'typo'"):
        site_hooks.on_page_markdown("It is <!-- measured:typo -->.", Page, None, None)


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.number)
def test_each_lesson_links_its_read_only_notebook_and_the_download(site, lab):
    lesson = (site / lab.slug / "index.html").read_text()
    assert 'href="lab/"' in lesson and f'href="{lab.slug}.ipynb"' in lesson
    page = (site / lab.slug / "lab" / "index.html").read_text()
    assert 'class="doubleedge-notebook"' in page and f'href="../{lab.slug}.ipynb"' in page
    copy = nbformat.read(site / lab.slug / f"{lab.slug}.ipynb", as_version=4)
    source = nbformat.read(lab.source_notebook, as_version=4)
    assert len(copy.cells) == len(source.cells)
    stubs = [c for c in copy.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    assert stubs and all("raise NotImplementedError" in c.source for c in stubs), "solutions become stubs"


LOADS = re.compile(r'<(?:script|img)[^>]*\ssrc="([^"]*)"|<link[^>]*\shref="([^"]*)"')


def test_each_lesson_has_its_deck_and_it_loads_only_files_of_the_site(site):
    decks = site / site_hooks.DECKS_DIR
    listing = (site / "instructors" / "slides" / "index.html").read_text()
    lessons = slides.lessons(REPO_ROOT / "course")
    assert len(lessons) >= 9
    for lesson in lessons:
        deck = decks / f"{lesson.parent.name}.html"
        text = deck.read_text("utf-8")
        _, _, parts = slides.split_lesson(lesson.read_text("utf-8"))
        shown = site_hooks.visible_text(text)
        assert [p.title for p in parts if p.title.replace("`", "") not in shown] == [], deck
        assert text.count("<section") > len(parts), deck
        assert f'href="../../{site_hooks.DECKS_DIR}/{deck.name}"' in listing
        loads = [a or b for a, b in LOADS.findall(text)]
        assert any(ref.endswith("reveal.js") for ref in loads), deck
        for ref in loads:
            assert not re.match(r"([a-z]+:)?//", ref), (deck, ref)
            assert (deck.parent / ref).is_file(), (deck, ref)
        assert "<!-- measured:" not in text, deck
    for css in decks.rglob("*.css"):
        assert not re.search(r"(@import|url\()\s*['\"]?(https?:)?//", css.read_text("utf-8")), css


def test_no_solution_or_hidden_test_text_anywhere_in_the_site(site):
    lines = source_only()
    assert len(lines) > 100
    checked = 0
    for path in sorted(p for p in site.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        text = readable_text(path)
        assert not [m for m in MARKERS if m in text], path
        assert site_hooks.leaks(text, lines) == [], path
        checked += 1
    assert checked > 30


def test_the_leak_check_finds_a_source_notebook_in_every_form(tmp_path):
    """The check above can fail: a rendered, a JSON-escaped and a raw source notebook are all caught."""
    lab = LABS["01"]
    lines = site_hooks.source_only_lines(lab.source_notebook)
    (tmp_path / "page.html").write_text(site_hooks.render_notebook(lab.source_notebook))
    rendered = site_hooks.render_notebook(lab.source_notebook)
    (tmp_path / "search_index.json").write_text(json.dumps({"docs": [{"location": "lab/", "text": rendered}]}))
    (tmp_path / "copy.ipynb").write_bytes(lab.source_notebook.read_bytes())
    for path in tmp_path.iterdir():
        found = site_hooks.leaks(readable_text(path), lines)
        assert len(found) > 10, path
        assert any(m in readable_text(path) for m in MARKERS), path
