"""The course site: its generated content (``doubleedge site generate``) and a real strict build
of the same ``course/`` with MkDocs + Material and with Zensical.

Generation runs once with an empty cache folder, so it makes the learner copies itself with
nbgrader; then each built site is read file by file.
"""

from __future__ import annotations

import html
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import markdown
import nbformat
import pytest

from doubleedge import figures, markers, site_content, slides
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

TEXT_SUFFIXES = {".html", ".json", ".ipynb", ".js", ".xml", ".css", ".txt", ".md"}
# Whatever the build does, these never reach a learner (the sources' own markers).
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def zensical_build(folder: Path) -> subprocess.CompletedProcess:
    """``zensical build --strict`` of a copy of course/ and mkdocs.yml in ``folder`` (Zensical builds
    into and caches beside its config file, so a build in the repository would write there).
    ``--clean``: Zensical caches a page by its own text, which does not show generated/markers.json."""
    shutil.copytree(REPO_ROOT / "course", folder / "course")
    shutil.copy(REPO_ROOT / "mkdocs.yml", folder / "mkdocs.yml")
    zensical = str(Path(sys.executable).with_name("zensical"))
    return subprocess.run([zensical, "build", "--strict", "--clean"], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, NO_COLOR="1"), timeout=600)  # fmt: skip


def generated_names() -> set[str]:
    """Names of what generation writes: none of them may appear in course/ outside generated/."""
    charts = figures.charts({name: figures.load(name) for name in figures.SETS})
    return set(charts) | {markers.FILE} | {f"{lab.slug}.ipynb" for lab in LABS.values()}


@pytest.fixture(scope="module")
def generated(built_site) -> Path:
    return built_site[0]


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    return built_site[1]  # the run's one strict build (tests/conftest.py); read, never changed


@pytest.fixture(scope="module")
def zensical_site(generated, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zensical")
    done = zensical_build(folder)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "No issues found" in done.stdout + done.stderr
    return folder / "site"


def resolve(site: Path, page: Path, href: str) -> Path:
    """The file a relative link of a built page points to (a folder means its index.html)."""
    target = site / posixpath.normpath(posixpath.join(page.parent.relative_to(site).as_posix(), href))
    return target / "index.html" if href.endswith("/") else target


def check_generated_content(site: Path) -> None:
    """What only generation provides is in the built site and reached from the pages that show it."""
    for lab in LABS.values():
        lesson = site / lab.slug / "index.html"
        links = re.findall(r'href="([^"#]+)"', lesson.read_text("utf-8"))
        page, download = (resolve(site, lesson, next(h for h in links if h.rstrip("/").endswith(end)))
                          for end in (site_content.notebook_url(lab).rstrip("/"), f"{lab.slug}.ipynb"))  # fmt: skip
        assert page == site / site_content.notebook_url(lab) / "index.html", lab.slug
        text = page.read_text("utf-8")
        assert 'class="doubleedge-notebook"' in text and "A read-only copy of the lab notebook" in text, lab.slug
        back = re.search(r'href="([^"]+)">the lesson<', text).group(1)
        assert resolve(site, page, back) == lesson, lab.slug
        assert resolve(site, page, re.search(r'href="([^"]+)">download the notebook<', text).group(1)) == download
        assert nbformat.read(download, as_version=4).cells, lab.slug
    charts = set(figures.charts({name: figures.load(name) for name in figures.SETS}))
    shown = set()
    for path in site.rglob("*.html"):
        text = path.read_text("utf-8")
        assert "<!-- measured:" not in text and markers.DECKS not in text, path
        for src in re.findall(r'<img[^>]*\ssrc="([^"]+\.png)"', text):
            if "/figures/" in src:
                assert resolve(site, path, src).read_bytes().startswith(b"\x89PNG"), (path, src)
                shown.add(Path(src).name)
    assert shown == charts, "every chart is drawn and shown on a page"
    listing = site / "instructors" / "slides" / "index.html"
    decks = [resolve(site, listing, h) for h in re.findall(r'href="([^"]+\.html)"', listing.read_text("utf-8"))]
    assert sorted(d.name for d in decks if d.is_file()) == [
        f"{p.parent.name}.html" for p in slides.lessons(REPO_ROOT / "course")
    ]


def test_mkdocs_strict_build_is_offline_safe(site):
    assert (site / "01-prompt-injection" / "index.html").is_file()
    html_text = (site / "index.html").read_text()
    assert "fonts.googleapis.com" not in html_text  # offline-safe theme


def test_mkdocs_site_carries_the_generated_content(site):
    check_generated_content(site)


def test_zensical_builds_the_same_course_strictly_with_the_generated_content(zensical_site, site):
    check_generated_content(zensical_site)
    pages = {p.relative_to(zensical_site) for p in zensical_site.rglob("index.html")}
    assert pages == {p.relative_to(site) for p in site.rglob("index.html")}, "the same pages as MkDocs"
    levels = (zensical_site / "target" / "defense-levels" / "index.html").read_text("utf-8")
    assert all(f"{level['overall_attack_success_rate']:.1%}" in levels for level in figures.load("levels")["levels"])
    quoted = figures.values({name: figures.load(name) for name in figures.SETS})
    lesson07 = " ".join((zensical_site / "07-memorization" / "index.html").read_text("utf-8").split())
    assert f"held-out chats is {quoted['memorization-perplexity-unhardened']}." in lesson07


def test_generation_is_deterministic(generated, tmp_path):
    """A second run from an empty cache (nbgrader, nbconvert, the charts and decks all made again)
    writes the same files, byte for byte."""
    again = site_content.generate(out=tmp_path / "generated", cache=tmp_path / "cache")

    def files(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    first, second = files(generated), files(again)
    assert len(first) > 30 and sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []


def test_generated_content_stays_in_its_git_ignored_folder(generated):
    assert generated == REPO_ROOT / "course" / "generated"
    names = generated_names()
    assert [p for p in (REPO_ROOT / "course").rglob("*") if p.name in names and generated not in p.parents] == []
    ignored = subprocess.run(["git", "check-ignore", "-q", str(generated / markers.FILE)], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "course/generated/ is git-ignored"


def test_generation_removes_what_no_longer_belongs(tmp_path):
    source, dest = tmp_path / "new", tmp_path / "old"
    site_content.write(source / "a" / "kept.md", b"new")
    site_content.write(dest / "a" / "kept.md", b"old")
    site_content.write(dest / "gone" / "stale.png", b"x")
    site_content.sync(source, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["a", "a/kept.md"]
    assert (dest / "a" / "kept.md").read_bytes() == b"new"


def readable_text(path: Path) -> str:
    """What a file shows or ships: HTML without tags (code is split into highlighting spans),
    JSON as its strings (the search index escapes quotes), notebooks as their cells."""
    raw = path.read_text("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        return site_content.notebook_text(path)
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
    return {line for lab in LABS.values() for line in site_content.source_only_lines(lab.source_notebook)}


def test_the_build_draws_every_chart_from_the_measured_records(site):
    records = {name: figures.load(name) for name in figures.SETS}
    for name in figures.charts(records):
        png = (site / site_content.GENERATED.name / site_content.FIGURES_DIR / name).read_bytes()
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
    ladder = html.unescape(re.sub(r"<[^>]+>", "", (site / "10-ladder" / "index.html").read_text()))  # text: abbr tags
    assert all(t["technique"] in ladder and t["source"] in ladder for t in figures.load("ladder")["techniques"])
    for page in site.rglob("*.html"):
        assert "<!-- measured:" not in page.read_text(), page


def test_a_marker_inside_a_sentence_becomes_the_figure(tmp_path):
    text = {"tables": {"t": "| a |\n| --- |\n| 1 |\n"}, "values": {"ppl": "1.22"}, "slide-decks": "- [deck](d.html)"}
    page = "Perplexity is <!-- measured:ppl -->.\n  <!-- measured:t -->\n<!-- measured:ppl -->\n<!-- slide-decks -->\n"
    done = markers.fill(page, text, "test.md")
    assert done == "Perplexity is 1.22.\n  | a |\n  | --- |\n  | 1 |\n1.22\n- [deck](d.html)\n"
    with pytest.raises(ValueError, match="no measured table or figure 'typo'"):
        markers.fill("It is <!-- measured:typo -->.", text, "test.md")
    # As a Markdown extension, reading the generated file; without it, the build stops and says why.
    (tmp_path / markers.FILE).write_text(json.dumps(text))
    page = "Perplexity is <!-- measured:ppl -->.\n\n<!-- measured:t -->\n\n<!-- slide-decks -->\n"
    rendered = markdown.markdown(
        page, extensions=["tables", markers.MarkersExtension(path=str(tmp_path / markers.FILE))]
    )
    assert "<p>Perplexity is 1.22.</p>" in rendered and "<td>1</td>" in rendered and 'href="d.html"' in rendered
    with pytest.raises(FileNotFoundError, match="doubleedge site generate"):
        markdown.markdown(page, extensions=[markers.MarkersExtension(path=str(tmp_path / "missing.json"))])


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.number)
def test_each_lesson_links_its_read_only_notebook_and_the_download(site, lab):
    lesson = (site / lab.slug / "index.html").read_text()
    assert (
        f'href="../{site_content.notebook_url(lab)}"' in lesson
        and f'href="../{site_content.download_url(lab)}"' in lesson
    )
    page = (site / site_content.notebook_url(lab) / "index.html").read_text()
    assert 'class="doubleedge-notebook"' in page and f'href="{lab.slug}.ipynb"' in page
    copy = nbformat.read(site / site_content.download_url(lab), as_version=4)
    source = nbformat.read(lab.source_notebook, as_version=4)
    assert len(copy.cells) == len(source.cells)
    stubs = [c for c in copy.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    assert stubs and all("raise NotImplementedError" in c.source for c in stubs), "solutions become stubs"


LOADS = re.compile(r'<(?:script|img)[^>]*\ssrc="([^"]*)"|<link[^>]*\shref="([^"]*)"')


def test_each_lesson_has_its_deck_and_it_loads_only_files_of_the_site(site):
    decks = site / site_content.decks_url()
    listing = (site / "instructors" / "slides" / "index.html").read_text()
    lessons = slides.lessons(REPO_ROOT / "course")
    assert len(lessons) >= 9
    for lesson in lessons:
        deck = decks / f"{lesson.parent.name}.html"
        text = deck.read_text("utf-8")
        _, _, parts = slides.split_lesson(lesson.read_text("utf-8"))
        shown = site_content.visible_text(text)
        assert [p.title for p in parts if p.title.replace("`", "") not in shown] == [], deck
        assert text.count("<section") > len(parts), deck
        assert f'href="../../{site_content.decks_url()}{deck.name}"' in listing
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
        assert site_content.leaks(text, lines) == [], path
        checked += 1
    assert checked > 30


def test_the_leak_check_finds_a_source_notebook_in_every_form(tmp_path):
    """The check above can fail: a rendered, a JSON-escaped and a raw source notebook are all caught."""
    lab = LABS["01"]
    lines = site_content.source_only_lines(lab.source_notebook)
    (tmp_path / "page.html").write_text(site_content.render_notebook(lab.source_notebook))
    rendered = site_content.render_notebook(lab.source_notebook)
    (tmp_path / "search_index.json").write_text(json.dumps({"docs": [{"location": "lab/", "text": rendered}]}))
    (tmp_path / "copy.ipynb").write_bytes(lab.source_notebook.read_bytes())
    for path in tmp_path.iterdir():
        found = site_content.leaks(readable_text(path), lines)
        assert len(found) > 10, path
        assert any(m in readable_text(path) for m in MARKERS), path
