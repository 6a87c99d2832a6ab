"""Scanning the web chat (Lab 04): garak reads what the app does with a reply, not the reply.

garak only sees text, and the danger in Lab 04 is not in the model's text but in what
the page and the database do with it. So the web app answers each request with a
``view`` (see ``target/webchat.py``) and garak reads that field:

* ``web_injection`` probes go to ``POST /chat``; the view is the rendered reply, with
  every image and link the page would load written in markdown and active markup
  kept. A render policy that drops an attacker's image or event handler removes it
  from what garak sees.
* ``exploitation`` probes (SQL and template injection) go to ``POST /order``; the view
  is the SQL statement the database compiled. A query built with parameters keeps
  what the model wrote out of the statement.

That is two garak runs (one per endpoint); their reports are joined into one
``scan.report.jsonl`` so that everything else reads it like any other scan.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doubleedge.scan.report import ScanReport, read_report
from doubleedge.scan.runner import REPORT_PREFIX, _workdir, preflight, rest_generator, run_garak
from doubleedge.scan.specs import ScanSpec, scan_for_lab
from doubleedge.target.webchat import WebChat, serving_webchat

ENDPOINT_OF_FAMILY = {"exploitation": "/order"}  # everything else goes to /chat


def split_by_endpoint(spec: ScanSpec) -> dict[str, ScanSpec]:
    """The spec's probes grouped by the endpoint that scans them; every other setting, and the
    spec's class (a real model's scan sends prompts concurrently and waits longer), carries over."""
    groups: dict[str, list[str]] = {}
    for probe in spec.probes:
        groups.setdefault(ENDPOINT_OF_FAMILY.get(probe.split(".")[0], "/chat"), []).append(probe)
    return {endpoint: replace(spec, probes=tuple(probes)) for endpoint, probes in groups.items()}


def scan_webchat(app: WebChat, spec: ScanSpec | None = None, workdir: Path | str | None = None) -> ScanReport:
    """Serve ``app`` on a free loopback port and scan it with Lab 04's garak scan."""
    spec = spec or scan_for_lab("04")
    with _workdir(Path(workdir) if workdir is not None else None) as folder, serving_webchat(app) as server:
        parts = []
        for endpoint, part in split_by_endpoint(spec).items():
            url = server.url + endpoint
            preflight(url)
            generator = rest_generator(url, request=part.request, timeout=part.request_timeout, name=part.target_name)
            generator["response_json_field"] = "view"
            sub = Path(folder) / endpoint.strip("/")
            run_garak(part, sub, generators={"rest": {"RestGenerator": generator}}, timeout=part.run_timeout)
            parts.append(sub / "reports" / f"{REPORT_PREFIX}.report.jsonl")
        joined = Path(folder) / f"{REPORT_PREFIX}.report.jsonl"
        joined.write_text("".join(p.read_text("utf-8").rstrip("\n") + "\n" for p in parts), "utf-8")
        report = read_report(joined)
    if workdir is None:  # the temporary folder is gone: keep the numbers, drop the path
        return ScanReport(report.results, None)
    return report
