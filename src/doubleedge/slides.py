"""Slide decks for the instructor, built from the lessons' own text (course/NN-slug/index.md).

One source: a deck is cut from its lesson, never written apart. Each lesson follows the same
skeleton (title, "Time", "Questions", "Objectives", ``##`` sections, exercises, "Key points"),
so the cut is mechanical:

* a title slide (the lesson's heading and its "Time" box);
* one slide per box before the first section ("Questions", "Objectives", "The lab notebook");
* one slide per ``##`` section and one (below it) per ``###`` subsection, showing the section's
  first paragraph or list; the whole section goes in the speaker notes (press ``S``);
* a last slide with the "Key points" box.

"Further reading" is left out. pyreveal writes the reveal.js decks and ships reveal.js itself,
so a deck loads nothing from the network. ``doubleedge site generate`` calls :func:`write_decks`
(see ``site_content``), which puts them in ``course/generated/slides/``, two folders below the site's root.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path

import markdown

SKIPPED_SECTIONS = ("Further reading",)
# What the decks load of pyreveal's reveal.js: the other themes import web fonts from the network.
ASSETS = ("reset.css", "reveal.css", "reveal.js", "theme/white.css", "plugin/notes.js")
KEY_POINTS = "Key points"
# The same Markdown extensions as mkdocs.yml, less those that only make sense in the site.
EXTENSIONS = ["admonition", "pymdownx.details", "pymdownx.superfences", "attr_list", "md_in_html", "tables"]
BOX = re.compile(r'^(!!!|\?\?\?\+?) *([a-z-]+)(?: +"([^"]*)")? *$')
LINK = re.compile(r'(href|src)="(?![a-z]+:|#|/)([^"]*)"')
DECK_CSS = """
.reveal { font-size: 30px; }
.reveal .slides section { text-align: left; }
.reveal h1, .reveal h2, .reveal h3 { text-transform: none; text-align: left; }
.reveal .admonition-title, .reveal summary { font-weight: bold; }
.reveal table { font-size: 0.45em; }
.reveal pre { font-size: 0.55em; }
"""


@dataclass
class Part:
    """A slide's worth of lesson: a heading and its Markdown, with sub-parts shown below it."""

    title: str
    body: str
    below: list[Part] = field(default_factory=list)


def lessons(course: Path) -> list[Path]:
    """Every numbered lesson page, in course order."""
    return sorted(course.glob("[0-9][0-9]-*/index.md"))


def split_lesson(text: str) -> tuple[str, list[Part], list[Part]]:
    """The lesson's title, its opening boxes and its sections (a "Key points" box becomes the last part)."""
    title, boxes, sections, key_points = "", [], [], []
    current: Part | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = Part(line[3:].strip(), "")
            sections.append(current)
        elif line.startswith("### ") and current is not None:
            current.below.append(Part(line[4:].strip(), ""))
        elif (box := BOX.match(line)) and (current is None or box.group(3) == KEY_POINTS):
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith("    ")):
                j += 1
            body = "\n".join(row[4:] for row in lines[i + 1 : j]).strip()
            (key_points if box.group(3) == KEY_POINTS else boxes).append(Part(box.group(3) or box.group(2), body))
            i = j
            continue
        elif current is not None:
            target = current.below[-1] if current.below else current
            target.body += line + "\n"
        i += 1
    sections = [s for s in sections if s.title not in SKIPPED_SECTIONS]
    return title, boxes, sections + key_points


def lead(body: str) -> str:
    """The first paragraph or list of a section's Markdown (boxes and code skipped), or else its
    first table (a section that is one table, such as "Real incidents")."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", body.strip()) if b.strip()]
    for block in blocks:
        if not block.startswith(("!!!", "???", "```", "|", "<!--", "<", "    ", "![")):
            return block
    return next((b for b in blocks if b.startswith("|")), "")


def to_html(text: str, slug: str) -> str:
    """Markdown to HTML; links into the site are made relative to ``generated/slides/``."""

    def relink(match: re.Match) -> str:
        target = match.group(2)
        path, _, anchor = target.partition("#")
        if path.endswith("index.md"):
            path = path[: -len("index.md")]
        elif path.endswith(".md"):
            path = path[: -len(".md")] + "/"
        return f'{match.group(1)}="../../{slug}/{path}{"#" + anchor if anchor else ""}"'

    return LINK.sub(relink, markdown.markdown(text, extensions=EXTENSIONS))


def inline(text: str) -> str:
    """A heading's Markdown (code spans, emphasis) as inline HTML."""
    return re.sub(r"^<p>(.*)</p>$", r"\1", markdown.markdown(text), flags=re.DOTALL)


def deck(lesson: Path, fill=lambda text: text, icon: str | None = None):
    """The lesson's deck (a pyreveal Presentation). ``fill`` puts the measured figures into the text;
    ``icon`` is the site's favicon, relative to the deck (without one, browsers ask for /favicon.ico)."""
    from pyreveal import Plugin, Presentation, Slide, Theme

    slug = lesson.parent.name
    title, boxes, sections = split_lesson(fill(lesson.read_text("utf-8")))
    time = next((b for b in boxes if b.title == "Time"), None)
    first = Slide(f"<h1>{inline(title)}</h1>" + (to_html(time.body, slug) if time else ""))
    slides = [first] + [Slide(f"<h2>{inline(b.title)}</h2>" + to_html(b.body, slug)) for b in boxes if b is not time]

    def slide(part: Part, level: int) -> Slide:
        shown = part.body if part.title == KEY_POINTS else lead(part.body)
        return Slide(f"<h{level}>{inline(part.title)}</h{level}>" + to_html(shown, slug),
                     notes=to_html(part.body, slug))  # fmt: skip

    for part in sections:
        top = slide(part, 2)
        top.vertical = [slide(sub, 3) for sub in part.below]
        slides.append(top)
    presentation = Presentation(title, theme=Theme.WHITE).configure(hash=True, slideNumber="c/t", progress=True)
    if icon:
        presentation.extra_head(f'<link rel="icon" href="{icon}">')
    return presentation.plugins(Plugin.NOTES).css(DECK_CSS).add(*slides)


def write_decks(course: Path, out: Path, fill=lambda text: text, icon: str | None = None) -> list[Path]:
    """Write one deck per lesson into ``out`` (``NN-slug.html``) with one shared copy of reveal.js."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in lessons(course):
        path = out / f"{lesson.parent.name}.html"
        path.write_text(deck(lesson, fill, icon).generate_html(), "utf-8")
        written.append(path)
    with as_file(files("pyreveal") / "revealjs" / "dist") as dist:
        for name in ASSETS:
            (out / "revealjs" / "dist" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(dist / name, out / "revealjs" / "dist" / name)
    return written
