"""Answer keys for instructors: each lab's source notebook (solutions and hidden tests in
place) as a readable HTML page and as the notebook itself, in a folder of their own.

Never part of the course site: the learner site is built from ``course/`` and only ever
publishes learner copies (``site_content``). ``doubleedge answer-keys`` refuses a folder inside
``course/`` or the site, so a key cannot land where MkDocs would publish it.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path

from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

DEFAULT_DIR = "instructor-keys"
BANNER = "Instructor only: the labs' solutions and hidden tests. Do not publish or hand out."
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
pre{{background:#f5f5f5;padding:.5rem;overflow-x:auto}}.banner{{background:#b00020;color:#fff;padding:.5rem 1rem}}</style>
</head><body><p class="banner">{banner}</p>
{body}
</body></html>
"""


def forbidden_places(site_dir: Path | None = None) -> list[Path]:
    """Folders whose content may be published: the lessons and the built site."""
    return [REPO_ROOT / "course", Path(site_dir or REPO_ROOT / "site")]


def check_outside_site(out: Path, site_dir: Path | None = None) -> Path:
    out = out.resolve()
    for place in forbidden_places(site_dir):
        if out == place.resolve() or place.resolve() in out.parents:
            raise ValueError(
                f"answer keys must not go into {place} (it is published to learners); choose another --out"
            )
    return out


def write_answer_keys(out: Path, site_dir: Path | None = None) -> list[Path]:
    """Write ``NN-slug.html`` and ``NN-slug.ipynb`` per lab plus an ``index.html``; return the pages."""
    from doubleedge.site_content import notebook_title, render_notebook

    out = check_outside_site(Path(out), site_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages, links = [], []
    for lab in LABS.values():
        source = lab.source_notebook
        title = f"Answer key: {notebook_title(source.read_bytes())}"
        page = out / f"{lab.slug}.html"
        page.write_text(PAGE.format(title=escape(title), banner=BANNER, body=render_notebook(source)), "utf-8")
        shutil.copy(source, out / f"{lab.slug}.ipynb")
        links.append(
            f'<li><a href="{lab.slug}.html">{escape(title)}</a> (<a href="{lab.slug}.ipynb">notebook</a>)</li>'
        )
        pages.append(page)
    body = "<h1>Answer keys</h1>\n<ul>\n" + "\n".join(links) + "\n</ul>"
    (out / "index.html").write_text(PAGE.format(title="Answer keys", banner=BANNER, body=body), "utf-8")
    return pages
