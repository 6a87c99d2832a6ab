"""MkDocs hooks (``hooks:`` in mkdocs.yml): what the site build adds to the course pages.

* **Measured charts and tables.** ``doubleedge.figures`` supplies the records of real runs
  (the committed ones, or a fresh measurement cached by key when they are out of date);
  the build draws every chart into the site as ``figures/*.png`` and replaces each
  ``<!-- measured:NAME -->`` line in a page with the table NAME, and the same marker inside a
  sentence with the figure NAME, so the prose quotes the record rather than a retyped number.
  Nothing is written into ``course/``.
* **The lab notebooks, read-only.** The learner copies are made the way ``doubleedge start``
  makes them (nbgrader's ``generate_assignment``, which removes solutions and hidden
  tests), rendered to HTML with nbconvert as the page ``NN-slug/lab/``, and the learner
  ``.ipynb`` is put next to it for download. The sources never reach the site. Copies and
  renderings are cached under a key of everything that determines them, so a rebuild is quick.
* **The slide decks.** One reveal.js deck per lesson, cut from the lesson's text with its
  measured figures filled in (``doubleedge.slides``), goes to ``slides/NN-slug.html``; the line
  ``<!-- slide-decks -->`` in a page becomes the list of links to them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

from doubleedge import figures, slides
from doubleedge.labs import LABS, Lab
from doubleedge.paths import REPO_ROOT, cache_dir, graders_dir

log = logging.getLogger("mkdocs.hooks.doubleedge")

# A line of its own, indented or not (a table can sit inside an admonition).
MARKER = re.compile(r"^([ \t]*)<!-- measured:([a-z0-9-]+) -->[ \t]*$", re.MULTILINE)
INLINE_MARKER = re.compile(r"<!-- measured:([a-z0-9-]+) -->")  # a figure inside a sentence
DECKS_MARKER = "<!-- slide-decks -->"
DECKS_DIR = "slides"  # in the site
NOTEBOOK_PAGE = "lab.md"  # in each lesson's folder: NN-slug/lab.md -> NN-slug/lab/
# The one page that publishes source text on purpose: the model answers of the written answers,
# which self-study learners read after grading themselves.
MODEL_ANSWERS = REPO_ROOT / "course" / "learners" / "written-answers.md"
RENDER_VERSION = 1  # bump when the notebook page's HTML changes in a way the key does not show

_tables: dict[str, str] = {}
_values: dict[str, str] = {}
_notebook_html: dict[str, str] = {}  # page src_uri -> rendered notebook


def on_files(files: Files, config) -> Files:  # MkDocsConfig; typed loosely like MkDocs' own hooks
    records = {name: figures.obtain(name, log=log.info) for name in figures.SETS}
    _tables.clear()
    _tables.update(figures.tables(records))
    _values.clear()
    _values.update(figures.values(records))
    for name, png in figures.charts(records).items():
        files.append(File.generated(config, f"figures/{name}", content=png))
    _notebook_html.clear()
    for lab, (notebook, html) in learner_notebooks().items():
        files.append(File.generated(config, f"{lab.slug}/{lab.slug}.ipynb", content=notebook))
        page = File.generated(config, f"{lab.slug}/{NOTEBOOK_PAGE}", content=notebook_page(lab, notebook),
                              inclusion=InclusionLevel.NOT_IN_NAV)  # fmt: skip
        files.append(page)
        _notebook_html[page.src_uri] = html
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if DECKS_MARKER in markdown:
        markdown = markdown.replace(DECKS_MARKER, deck_links(page.file.src_uri))
    return fill_measured(markdown, page.file.src_uri)


def fill_measured(markdown: str, where: str) -> str:
    """The text with each measured marker replaced by its table or figure (``where`` names the file in errors)."""

    def table(match: re.Match) -> str:
        indent, name = match.groups()
        if name not in _tables:
            return match.group(0)  # a figure on a line of its own: the next step puts it in
        return "\n".join(indent + line for line in _tables[name].rstrip("\n").splitlines())

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in _values:
            known = ", ".join([*_tables, *_values])
            raise PluginError(f"{where}: no measured table or figure {name!r}; known: {known}")
        return _values[name]

    return INLINE_MARKER.sub(value, MARKER.sub(table, markdown))


def deck_links(src_uri: str) -> str:
    """A list of links to the decks, relative to the page (raw HTML: the decks are not pages)."""
    depth = src_uri.count("/") + (0 if src_uri.endswith("index.md") else 1)
    up = "../" * depth
    items = []
    for lesson in slides.lessons(REPO_ROOT / "course"):
        name = lesson.parent.name
        heading = lesson.read_text("utf-8").splitlines()[0].lstrip("# ").strip()
        items.append(f'<li><a href="{up}{DECKS_DIR}/{name}.html">{heading}</a></li>')
    return '<ul class="doubleedge-decks">\n' + "\n".join(items) + "\n</ul>"


def on_post_build(config) -> None:
    slides.write_decks(REPO_ROOT / "course", Path(config.site_dir) / DECKS_DIR, icon="../assets/images/favicon.png",
                       fill=lambda text: fill_measured(text, "a lesson's slides"))  # fmt: skip


def on_page_content(html: str, page, config, files) -> str:
    # Added after the markdown step: the notebook is HTML already, and Markdown must not touch its <pre> blocks.
    notebook = _notebook_html.get(page.file.src_uri)
    if notebook is None:
        return html
    # The page's own text (read-only note, download link) goes under the notebook's title.
    end = notebook.find("</h1>")
    cut = end + len("</h1>") if end >= 0 else 0
    return f'<div class="doubleedge-notebook">\n{notebook[:cut]}\n{html}\n{notebook[cut:]}\n</div>\n'


# --- the lab notebooks -------------------------------------------------------------------------


def notebook_title(notebook: bytes) -> str:
    """The notebook's first heading, e.g. "Lab 01: Prompt injection and jailbreaks"."""
    import nbformat

    for cell in nbformat.reads(notebook.decode("utf-8"), as_version=4).cells:
        heading = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        if heading:
            return heading.group(1).strip()
    return "Lab notebook"


def notebook_page(lab: Lab, notebook: bytes) -> str:
    title = notebook_title(notebook).replace('"', "'")
    return f"""---
title: "{title} (notebook)"
search:
  boost: 0.5
---

!!! info "A read-only copy of the lab notebook"

    This is the learner copy that `make start` puts in `workspace/{lab.slug}/` and opens in
    JupyterLab, shown here to read. To work on it, run `make start`, or
    [download the notebook]({lab.slug}.ipynb) and open it in JupyterLab in the course's
    environment. Back to [the lesson](index.md).
"""


def notebooks_key() -> str:
    """A hash of everything that determines the learner copies and their rendering."""
    digest = hashlib.sha256()
    for part in (str(RENDER_VERSION), version("doubleedge"), version("nbgrader"), version("nbconvert")):
        digest.update(part.encode() + b"\0")
    digest.update((graders_dir() / "nbgrader_config.py").read_bytes())
    for lab in LABS.values():
        folder = lab.source_notebook.parent
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def learner_notebooks(cache: Path | None = None) -> dict[Lab, tuple[bytes, str]]:
    """Each lab's learner copy (.ipynb bytes) and its HTML rendering, from the cache or made now."""
    folder = Path(cache or cache_dir()) / "notebooks" / notebooks_key()
    if not all((folder / f"{lab.slug}.ipynb").is_file() and (folder / f"{lab.slug}.html").is_file()
               for lab in LABS.values()):  # fmt: skip
        log.info("making the learner copies of the labs (nbgrader) for the site; they are cached in %s", folder)
        _make_learner_notebooks(folder)
    return {
        lab: ((folder / f"{lab.slug}.ipynb").read_bytes(), (folder / f"{lab.slug}.html").read_text("utf-8"))
        for lab in LABS.values()
    }


def _make_learner_notebooks(folder: Path) -> None:
    from doubleedge.start import make_workspace

    folder.parent.mkdir(parents=True, exist_ok=True)
    # Staged next to the target (same file system), then renamed: a concurrent build sees all or nothing.
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=folder.parent) as tmp:
        workspace, staging = Path(tmp) / "workspace", Path(tmp) / "out"
        staging.mkdir()
        make_workspace(workspace)  # the same learner copies as `doubleedge start`
        for lab in LABS.values():
            notebook = workspace / lab.slug / f"{lab.slug}.ipynb"
            html = render_notebook(notebook)
            # Defense in depth: never publish a copy that still holds what only the source may hold.
            found = leaks(notebook_text(notebook), source_only_lines(lab.source_notebook))
            found += leaks(visible_text(html), source_only_lines(lab.source_notebook))
            if found:
                raise PluginError(f"the learner copy of {lab.slug} holds source-only text: {found[0]!r}")
            shutil.copy(notebook, staging / notebook.name)
            (staging / f"{lab.slug}.html").write_text(html, "utf-8")
        try:
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():  # else another build got there first, with the same content
                raise


def render_notebook(path: Path) -> str:
    """The notebook as an HTML fragment (nbconvert's ``basic`` template: no scripts, no CDN)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nbformat.read(path, as_version=4))
    return body


# --- what only the sources may hold --------------------------------------------------------

SOURCE_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
REGIONS = {"### BEGIN SOLUTION": "### END SOLUTION", "### BEGIN HIDDEN TESTS": "### END HIDDEN TESTS"}
MIN_LINE = 20  # shorter lines ("return text", "pass") also occur in ordinary code


def source_only_lines(source: Path) -> set[str]:
    """Lines of a lab's source notebook that no learner copy may hold: its solution and hidden-test
    regions, the whole of its solution markdown cells, and the markers themselves; whitespace
    collapsed, at least MIN_LINE characters, and not also part of a visible line of the source.
    A written answer (a manually graded markdown cell) whose whole text is on the model answers
    page is published on purpose: its lines are not source-only."""
    import nbformat

    hidden: set[str] = set()
    visible: list[str] = []
    published = normalized(MODEL_ANSWERS.read_text("utf-8")) if MODEL_ANSWERS.is_file() else ""
    for cell in nbformat.read(source, as_version=4).cells:
        lines = cell.source.splitlines()
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown" and meta.get("solution"):
            if not (meta.get("grade") and normalized(cell.source) in published):
                hidden.update(lines)
            continue
        end = None
        for line in lines:
            marker = line.strip()
            if end is None and marker in REGIONS:
                end = REGIONS[marker]
                hidden.add(marker)
            elif end is not None and marker == end:
                end = None
                hidden.add(marker)
            elif end:
                hidden.add(line)
            else:
                visible.append(line)
    shown = normalized("\n".join(visible))
    return {n for n in map(normalized, hidden) if len(n) >= MIN_LINE and n not in shown} | {
        normalized(f"### {m}") for m in SOURCE_MARKERS
    }


def notebook_text(path: Path) -> str:
    """Every cell's source and text outputs (the JSON file escapes quotes and newlines)."""
    import nbformat

    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        parts.append(cell.source)
        parts += [
            str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", [])
        ]
    return "\n".join(parts)


def normalized(text: str) -> str:
    return " ".join(text.split())


def visible_text(html: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped (syntax highlighting splits code into spans)."""
    import html as entities

    return entities.unescape(re.sub(r"<[^>]+>", "", html))


def leaks(text: str, lines: set[str]) -> list[str]:
    """The source-only ``lines`` that occur in ``text`` (whitespace-insensitive)."""
    haystack = normalized(text)
    return sorted(line for line in lines if line in haystack)
