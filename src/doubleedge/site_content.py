"""The course site's generated content: ``doubleedge site generate`` writes it into
``course/generated/`` (git-ignored) before the site is built, and the site generator only reads it.
So the same ``course/`` builds strictly with MkDocs + Material and with Zensical (which runs no
MkDocs hooks); ``make start`` and the site tests generate first.

* **Measured charts and tables.** ``doubleedge.figures`` supplies the records of real runs
  (the committed ones, or a fresh measurement cached by key when they are out of date). Every
  chart goes to ``generated/figures/*.png``; the tables and the figures the prose quotes go to
  ``generated/markers.json``, from which the Markdown extension ``doubleedge.markers`` replaces
  each ``<!-- measured:NAME -->`` marker in a page, so the prose quotes the record rather than
  a retyped number.
* **The lab notebooks, read-only.** The learner copies are made the way ``doubleedge start``
  makes them (nbgrader's ``generate_assignment``, which removes solutions and hidden
  tests), rendered to HTML with nbconvert as the page ``generated/labs/NN-slug/index.md``, with the
  learner ``.ipynb`` next to it for download. The sources never reach the site. Copies and
  renderings are cached under a key of everything that determines them, so generating again is quick.
* **The slide decks.** One reveal.js deck per lesson, cut from the lesson's text with its
  measured figures filled in (``doubleedge.slides``), goes to ``generated/slides/NN-slug.html``;
  the line ``<!-- slide-decks -->`` in a page becomes the list of links to them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from doubleedge import figures, markers, slides
from doubleedge.labs import LABS, Lab
from doubleedge.paths import REPO_ROOT, cache_dir, graders_dir

log = logging.getLogger("doubleedge.site")

COURSE = REPO_ROOT / "course"
GENERATED = COURSE / "generated"  # git-ignored; mkdocs.yml keeps its pages out of the nav
FIGURES_DIR, LABS_DIR, DECKS_DIR = "figures", "labs", "slides"  # inside GENERATED
# The pages that publish source text on purpose: the model answers of the written answers,
# which self-study learners read after grading themselves, and the instructors' rubric page,
# which shows the model answer of Lab 08's disclosure report (built on a capstone finding that the
# capstone lesson already shows as its report template).
MODEL_ANSWERS = COURSE / "learners" / "written-answers.md"
INSTRUCTOR_ANSWERS = COURSE / "instructors" / "written-answers.md"
RENDER_VERSION = 1  # bump when the notebook page's HTML changes in a way the key does not show


def generate(out: Path = GENERATED, cache: Path | None = None, say: Callable[[str], None] = log.info) -> Path:
    """Write everything the site shows but no page holds into ``out`` and remove what no longer
    belongs there. The same inputs give the same files, byte for byte."""
    records = {name: figures.obtain(name, cache=cache, log=say) for name in figures.SETS}
    with tempfile.TemporaryDirectory(prefix="doubleedge-site-") as tmp:
        staging = Path(tmp)
        for name, png in figures.charts(records).items():
            write(staging / FIGURES_DIR / name, png)
        for lab, (notebook, html) in learner_notebooks(cache, say).items():
            write(staging / LABS_DIR / lab.slug / f"{lab.slug}.ipynb", notebook)
            write(staging / LABS_DIR / lab.slug / "index.md", notebook_page(lab, notebook, html).encode())
        text = {"tables": figures.tables(records), "values": figures.values(records), "slide-decks": deck_links(COURSE)}
        write(staging / markers.FILE, json.dumps(text, indent=1, sort_keys=True, ensure_ascii=False).encode())
        slides.write_decks(COURSE, staging / DECKS_DIR, icon="../../assets/images/favicon.png",
                           fill=lambda page: markers.fill(page, text, "a lesson's slides"))  # fmt: skip
        sync(staging, out)
    return out


def sync(source: Path, dest: Path) -> None:
    """Make ``dest`` hold exactly the files of ``source``. An unchanged file is left alone and a changed
    one is swapped in whole, so a build running meanwhile never reads half a file, and two runs at
    once (parallel tests) write nothing once the content is there."""
    wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    for rel in sorted(wanted):
        content, target = (source / rel).read_bytes(), dest / rel
        if target.is_file() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # hidden: no generator reads it
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    for path in sorted(dest.rglob("*"), reverse=True):  # files before their folders
        if path.is_file() and not path.name.startswith(".") and path.relative_to(dest) not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def notebook_url(lab: Lab) -> str:
    """The read-only notebook page of ``lab`` in the built site, relative to its root."""
    return f"{GENERATED.name}/{LABS_DIR}/{lab.slug}/"


def download_url(lab: Lab) -> str:
    return f"{notebook_url(lab)}{lab.slug}.ipynb"


def decks_url() -> str:
    return f"{GENERATED.name}/{DECKS_DIR}/"


def write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def deck_links(course: Path) -> str:
    """The list of links to the decks, in Markdown (so that the generator checks them), relative to
    the page that holds the ``<!-- slide-decks -->`` marker; every such page must sit in the same folder."""
    folders = {p.parent.relative_to(course) for p in course.rglob("*.md")
               if GENERATED not in p.parents and markers.DECKS in p.read_text("utf-8")}  # fmt: skip
    if len(folders) > 1:
        raise ValueError(f"the slide-decks marker is on pages in different folders: {sorted(map(str, folders))}")
    up = "../" * len(folders.pop().parts) if folders else ""
    items = []
    for lesson in slides.lessons(course):
        heading = lesson.read_text("utf-8").splitlines()[0].lstrip("# ").strip()
        items.append(f"- [{heading}]({up}{decks_url()}{lesson.parent.name}.html)")
    return "\n".join(items)


# --- the lab notebooks -------------------------------------------------------------------------


def notebook_title(notebook: bytes) -> str:
    """The notebook's first heading, e.g. "Lab 01: Prompt injection and jailbreaks"."""
    import nbformat

    for cell in nbformat.reads(notebook.decode("utf-8"), as_version=4).cells:
        heading = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        if heading:
            return heading.group(1).strip()
    return "Lab notebook"


def notebook_page(lab: Lab, notebook: bytes, html: str) -> str:
    """The read-only page: the rendered notebook, with a note under its title (read-only, the download).
    It is one block of HTML, which Markdown passes through untouched (the notebook's ``<pre>`` blocks
    included). Its links are relative to its own folder, which is also its URL (``NN-slug/index.md``):
    MkDocs leaves links in HTML as they are, Zensical resolves them from the file, and both agree."""
    title = notebook_title(notebook).replace('"', "'")
    html = escaped_anchors(html)
    end = html.find("</h1>")
    cut = end + len("</h1>") if end >= 0 else 0
    note = f"""<div class="admonition info">
<p class="admonition-title">A read-only copy of the lab notebook</p>
<p>This is the learner copy that <code>make start</code> puts in <code>workspace/{lab.slug}/</code> and opens in
JupyterLab, shown here to read. To work on it, run <code>make start</code>, or
<a href="{lab.slug}.ipynb">download the notebook</a> and open it in JupyterLab in the course's
environment. Back to <a href="../../../{lab.slug}/">the lesson</a>.</p>
</div>"""
    return f"""---
title: "{title} (notebook)"
search:
  boost: 0.5
---

<div class="doubleedge-notebook">
{html[:cut]}
{note}
{html[cut:]}
</div>
"""


# nbconvert's heading ids keep the heading's apostrophes and percent-encode some characters
# ("customer's", "--%3E-str"). Zensical 0.0.73's link check misses such an anchor in raw HTML
# and fails the strict build; written as character references (&#39;, &#37;) the attribute
# values are the same to a browser and to MkDocs, and Zensical finds them.
ANCHOR = re.compile(r'(\s(?:id="|href="#))([^"]*)"')


def escaped_anchors(html: str) -> str:
    """``html`` with ``'`` and ``%`` in its ids and in-page links written as character references."""
    return ANCHOR.sub(lambda m: m.group(1) + m.group(2).replace("%", "&#37;").replace("'", "&#39;") + '"', html)


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


def learner_notebooks(cache: Path | None = None, say: Callable[[str], None] = log.info) -> dict[Lab, tuple[bytes, str]]:
    """Each lab's learner copy (.ipynb bytes) and its HTML rendering, from the cache or made now."""
    folder = Path(cache or cache_dir()) / "notebooks" / notebooks_key()
    if not all((folder / f"{lab.slug}.ipynb").is_file() and (folder / f"{lab.slug}.html").is_file()
               for lab in LABS.values()):  # fmt: skip
        say(f"making the learner copies of the labs (nbgrader) for the site; they are cached in {folder}")
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
                raise ValueError(f"the learner copy of {lab.slug} holds source-only text: {found[0]!r}")
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
    page or the instructors' rubric page is published on purpose: its lines are not source-only."""
    import nbformat

    hidden: set[str] = set()
    visible: list[str] = []
    published = " ".join(normalized(page.read_text("utf-8")) for page in (MODEL_ANSWERS, INSTRUCTOR_ANSWERS)
                         if page.is_file())  # fmt: skip
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
