"""Lab 04: improper output handling, in the web chat that shows the bot's replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from doubleedge.labs.base import ChatTarget, Lab
from doubleedge.labs.targets import build_bot
from doubleedge.scan.specs import ScanSpec

if TYPE_CHECKING:
    from pathlib import Path

    from doubleedge.scan import ScanReport
    from doubleedge.target.webchat import WebChat, WebChatServer


def build_webchat(model: str, defense: str, learner: str | None) -> WebChat:
    """The web chat around the unhardened bot; its page and order desk hardened by --defense lab04."""
    from doubleedge.defenses import lab04 as solution
    from doubleedge.target.webchat import Policy, WebChat

    hardened = Policy("lab04", solution.render, solution.order_query, solution.CONTENT_SECURITY_POLICY)
    return WebChat(build_bot(model, "none", learner), hardened if defense == "lab04" else Policy())


def serve_webchat(app: WebChat, host: str, port: int) -> WebChatServer:
    from doubleedge.target.webchat import WebChatServer

    return WebChatServer(app, host, port)


def scan_webchat(app: WebChat, spec: ScanSpec, workdir: Path | None) -> ScanReport:
    from doubleedge.scan import webchat

    return webchat.scan_webchat(app, spec, workdir)


def measure() -> tuple[dict, dict]:
    from doubleedge.defenses import lab04 as solution
    from doubleedge.figures import LEARNER, side
    from doubleedge.grading.lab04 import benign_render_failures, fresh_app
    from doubleedge.scan.webchat import scan_webchat
    from doubleedge.target.webchat import Policy, markdown_to_html

    hardened = Policy("lab04", solution.render, solution.order_query, solution.CONTENT_SECURITY_POLICY)
    sides = []
    for policy, render in ((Policy(), markdown_to_html), (hardened, solution.render)):
        total, failures = benign_render_failures(render, LEARNER)
        sides.append(side(scan_webchat(fresh_app(LEARNER, policy)), 1 - len(failures) / total))
    return tuple(sides)


def thresholds() -> list[str]:
    from doubleedge.grading import lab04

    return [f"below {lab04.ASR_THRESHOLD:.0%}", f"at least {lab04.BENIGN_THRESHOLD:.0%}"]


LAB = Lab(
    number="04",
    slug="04-output-handling",
    title="Improper output handling",
    package=__name__,
    # The web chat's page and order desk do the damage (see scan/webchat.py).
    target=ChatTarget(
        name="the web chat",
        speaker="Bell",
        build=build_webchat,
        defenses=("none", "lab04"),
        serve=serve_webchat,
        scan=scan_webchat,
        routes=" and /order, its page at {url}/",
        url_refusal="Lab 04 scans what the web chat's page and order desk make of replies: drop --url",
    ),
    checks="doubleedge.grading.lab04",
    # before its preview read the learner's re-scan instead of scanning again
    earlier_test_cells={"test_hardening_asr": ("08c3bc0467747034ac11dc58dba60b425456306b9782c703195318970245136f",)},
    solution="doubleedge.defenses.lab04",
    defense="lab04",
    # What the web chat's page and its database do with a reply: exfiltration images and
    # links, XSS, SQL and template injection. ColabAIDataLeakage is left out: the reference
    # model never triggers it.
    scan=ScanSpec(
        lab="04",
        probes=(
            "web_injection.MarkdownImageExfil",
            "web_injection.MarkdownURIImageExfilExtended",
            "web_injection.MarkdownURINonImageExfilExtended",
            "web_injection.PlaygroundMarkdownExfil",
            "web_injection.StringAssemblyDataExfil",
            "web_injection.MarkdownXSS",
            "web_injection.TaskXSS",
            "exploitation.SQLInjectionEcho",
            "exploitation.JinjaTemplatePythonInjection",
        ),
    ),
    benign="ordinary replies rendered whole",
    ordinary_allowed=(
        "the sanitised rendering: `render(reply)` may change the markup, but must show exactly the words the "
        "app's own rendering of the reply shows"
    ),
    measure=measure,
    thresholds=thresholds,
    hidden=(
        "check_render",
        "check_order_query",
        "check_csp",
        "attribute_filter=keep_shop_urls",
        "customer = ? AND number = ?",
        'onerror=\\"alert(document.cookie)',
        "logo.png?q=[DATA]",
        "' OR '1'='1\"",
    ),
)
