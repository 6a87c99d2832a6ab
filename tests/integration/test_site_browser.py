"""The built course site in a real headless browser, served from loopback.

The site's generated content (``doubleedge site generate``: the measured charts, the rendered
lab notebooks, the decks), then a real ``mkdocs build --strict``, served by a stdlib HTTP server on 127.0.0.1, visited page by page in
Debian's ``chromium`` driven by PyPI ``playwright`` (``executable_path``; never
``playwright install``). Every request the pages make is recorded: the site must work
offline, so nothing may leave 127.0.0.1.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from headless import ARGS, CHROMIUM, screenshot, sync_api

from doubleedge import site_content
from doubleedge.labs import LABS
from doubleedge.paths import REPO_ROOT

pytestmark = pytest.mark.integration

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
# Modules are the numbered folders of course/ (01..07, and 08 or a capstone when they exist).
MODULES = sorted(p.name for p in (REPO_ROOT / "course").iterdir() if p.is_dir() and re.match(r"\d\d-", p.name))
SEARCH_TERM, SEARCH_LESSON = "Secret Sharer", "07-memorization"  # Carlini et al.'s canary paper


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Visit:
    status: int
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    images: list[list] = field(default_factory=list)  # [src, naturalWidth]
    text: str = ""
    links: list[str] = field(default_factory=list)
    cut_code: list[str] = field(default_factory=list)  # code blocks wider than their box
    split_names: list[str] = field(default_factory=list)  # code in tables broken across lines


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    return built_site[1]  # the run's one strict build (tests/conftest.py)


@pytest.fixture(scope="module")
def base_url(site):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        yield context
        context.close()
        chromium.close()


def page_urls(site: Path, base_url: str) -> list[str]:
    """Every page of the built site, nav or not (the notebook pages are linked from lessons only),
    and every lesson's slide deck."""
    pages = [urljoin(base_url, p.parent.relative_to(site).as_posix() + "/").replace("/./", "/")
             for p in site.rglob("index.html")]  # fmt: skip
    decks = [urljoin(base_url, p.relative_to(site).as_posix()) for p in (site / site_content.decks_url()).glob("*.html")]
    assert len(decks) >= 9, "one deck per lesson"
    return sorted(pages + decks)


def visit(page, url: str, seen: Visit) -> Visit:
    """Load ``url`` in ``page`` (the page's handlers record into ``seen``), then read what it shows."""
    response = page.goto(url, wait_until="networkidle")  # the last page's requests ended before this
    seen.status = response.status if response else 0
    seen.images = page.evaluate("Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth])")
    seen.text = page.evaluate("document.documentElement.textContent")
    seen.links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    seen.cut_code = page.eval_on_selector_all(
        ".md-typeset pre > code", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
    )
    seen.split_names = page.eval_on_selector_all(
        ".md-typeset td code", "els => els.filter(e => e.getClientRects().length > 1).map(e => e.textContent)"
    )
    return seen


@pytest.fixture(scope="module")
def visits(site, base_url, browser) -> dict[str, Visit]:
    """Every page, visited one after the other in one tab, as a reader clicks through: a new tab
    per page cost Chromium twice the CPU (a renderer process of its own each time). A failed
    request is not cached, so a page that reaches beyond loopback is seen on every visit."""
    page, seen = browser.new_page(), {}
    current: list[Visit] = []
    page.on("request", lambda r: current[-1].requests.append(r.url))
    page.on("console", lambda m: current[-1].errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: current[-1].errors.append(str(e)))
    for url in page_urls(site, base_url):
        current.append(Visit(0))
        seen[url] = visit(page, url, current[-1])
    page.close()
    return seen


def test_every_page_loads_without_console_errors(visits):
    assert len(visits) > 20
    for url, seen in visits.items():
        assert seen.status == 200, url
        assert seen.errors == [], url


def test_no_page_requests_anything_beyond_loopback(visits):
    for url, seen in visits.items():
        assert seen.requests, url
        outside = [r for r in seen.requests if urlsplit(r).scheme not in ("data", "blob")
                   and urlsplit(r).hostname != "127.0.0.1"]  # fmt: skip
        assert outside == [], url


def test_every_image_is_drawn(visits):
    images = [(url, src, width) for url, seen in visits.items() for src, width in seen.images]
    charts = [src for _, src, _ in images if "/figures/" in src]
    assert len(charts) >= 10, "the measured charts: baseline, levels, one per lab, exposure, privacy/utility"
    assert [(url, src) for url, src, width in images if width <= 0] == []


def test_no_page_holds_solution_or_hidden_test_text(visits):
    lines = {line for lab in LABS.values() for line in site_content.source_only_lines(lab.source_notebook)}
    for url, seen in visits.items():
        assert [m for m in MARKERS if m in seen.text] == [], url
        assert site_content.leaks(seen.text, lines) == [], url


def test_no_code_block_is_cut_and_no_name_in_a_table_breaks(visits):
    assert [(url, seen.cut_code[0][:80]) for url, seen in visits.items() if seen.cut_code] == []
    assert [(url, seen.split_names[0]) for url, seen in visits.items() if seen.split_names] == []


def test_screenshots_of_the_home_page_and_lesson_01(browser, base_url):
    """For a person to look at: the first-step box, a lesson's commands and its probe table."""
    page = browser.new_page()
    page.goto(base_url, wait_until="networkidle")
    assert page.locator(".admonition", has_text="start with").first.is_visible()
    screenshot(page, "site-home")
    page.goto(urljoin(base_url, "01-prompt-injection/"), wait_until="networkidle")
    for text, name in (("--defense lab01", "site-lesson01-commands"), ("HijackHateHumans", "site-lesson01-probes")):
        element = page.locator(".md-typeset pre, .md-typeset table", has_text=text).first
        element.scroll_into_view_if_needed()
        screenshot(element, name)
    page.close()


def test_navigation_reaches_every_module(browser, base_url):
    assert {lab.slug for lab in LABS.values()} <= set(MODULES)
    page = browser.new_page()
    for module in MODULES:
        page.goto(base_url, wait_until="load")
        link = page.locator(f'nav.md-nav--primary a.md-nav__link[href="{module}/"]').first
        title = link.inner_text().strip()
        link.click()
        page.wait_for_load_state("load")
        assert page.url == f"{base_url}{module}/"
        heading = page.locator("article h1").first.inner_text().strip()
        # Numbered modules say their number; the capstone has a title of its own.
        assert heading.startswith(module[:2]) if title[:2].isdigit() else heading, (module, title, heading)
    page.close()


def test_search_finds_a_lesson_by_a_key_term(browser, base_url):
    page = browser.new_page()
    page.goto(base_url, wait_until="networkidle")  # the search index is loaded by then
    page.click(".md-search__input")
    page.keyboard.type(SEARCH_TERM)
    page.wait_for_selector(".md-search-result__item a", timeout=15_000)
    found = page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.href)")
    assert any(urlsplit(href).path == f"/{SEARCH_LESSON}/" for href in found), found
    page.close()


@pytest.mark.parametrize("lab", LABS.values(), ids=lambda lab: lab.number)
def test_every_lab_link_resolves(browser, visits, base_url, lab):
    lesson = visits[f"{base_url}{lab.slug}/"]
    notebook_page = urljoin(base_url, site_content.notebook_url(lab))
    download = urljoin(base_url, site_content.download_url(lab))
    assert notebook_page in lesson.links and download in lesson.links
    assert download in visits[notebook_page].links
    for url in (notebook_page, download):
        response = browser.request.get(url)
        assert response.status == 200, url
    notebook = browser.request.get(download).json()
    assert notebook["nbformat"] == 4 and len(notebook["cells"]) > 5


def test_a_lesson_deck_runs_as_a_slide_show(browser, base_url):
    """reveal.js starts from the site's own copy, the arrow keys move, and each section slide has its notes."""
    page = browser.new_page()
    page.goto(urljoin(base_url, f"{site_content.decks_url()}01-prompt-injection.html"), wait_until="networkidle")
    assert page.evaluate("Reveal.isReady()") and page.evaluate("Reveal.getTotalSlides()") > 10
    page.keyboard.press("ArrowRight")
    assert page.evaluate("Reveal.getIndices().h") == 1
    assert page.locator("section aside.notes").count() > 10
    screenshot(page, "deck-lesson01")
    page.close()
