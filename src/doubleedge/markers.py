"""A Markdown extension (``markdown_extensions:`` in mkdocs.yml) that fills a page's markers with the
text ``doubleedge site generate`` wrote into ``course/generated/markers.json``.

* ``<!-- measured:NAME -->`` on a line of its own (indented or not: a table can sit inside an
  admonition) becomes the measured table NAME; inside a sentence, the measured figure NAME.
* ``<!-- slide-decks -->`` becomes the list of links to the lesson decks.

It computes nothing: it only reads the generated file, so any generator that runs Python-Markdown
with the extensions of mkdocs.yml (MkDocs, Zensical) shows the same pages. A marker with no text,
or no generated file at all, stops the build with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

from doubleedge.paths import REPO_ROOT

FILE = "markers.json"  # in course/generated/
DEFAULT = REPO_ROOT / "course" / "generated" / FILE
MARKER = re.compile(r"^([ \t]*)<!-- measured:([a-z0-9-]+) -->[ \t]*$", re.MULTILINE)
INLINE_MARKER = re.compile(r"<!-- measured:([a-z0-9-]+) -->")  # a figure inside a sentence
DECKS = "<!-- slide-decks -->"


def fill(markdown: str, text: dict, where: str) -> str:
    """``markdown`` with each marker replaced from ``text`` (``tables``, ``values``, ``slide-decks``);
    ``where`` names the file in errors."""
    tables, values = text["tables"], text["values"]

    def table(match: re.Match) -> str:
        indent, name = match.groups()
        if name not in tables:
            return match.group(0)  # a figure on a line of its own: the next step puts it in
        return "\n".join(indent + line for line in tables[name].rstrip("\n").splitlines())

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"{where}: no measured table or figure {name!r}; known: {', '.join([*tables, *values])}")
        return values[name]

    markdown = markdown.replace(DECKS, text["slide-decks"])
    return INLINE_MARKER.sub(value, MARKER.sub(table, markdown))


def load(path: Path = DEFAULT) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `doubleedge site generate` before building the site")
    return json.loads(path.read_text("utf-8"))


class _Fill(Preprocessor):
    def __init__(self, md: Markdown, path: Path) -> None:
        super().__init__(md)
        self.path = path

    def run(self, lines: list[str]) -> list[str]:
        page = "\n".join(lines)
        if "<!-- " not in page:
            return lines
        return fill(page, load(self.path), "a page").split("\n")


class MarkersExtension(Extension):
    def __init__(self, **kwargs) -> None:
        self.config = {"path": [str(DEFAULT), "the generated markers.json"]}
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        # Before pymdownx.snippets (32) and the HTML block step (20): as if the page held the text.
        md.preprocessors.register(_Fill(md, Path(self.getConfig("path"))), "doubleedge_markers", 40)


def makeExtension(**kwargs) -> MarkersExtension:
    return MarkersExtension(**kwargs)
