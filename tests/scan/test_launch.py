"""Starting garak through ``doubleedge.scan.launch``: nltk on first use only, the course's plugins
only when asked for, and a report identical to ``python -m garak``'s on the same scan."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from doubleedge.scan.launch import NO_COURSE_PLUGINS
from doubleedge.scan.runner import garak_config, garak_env, rest_generator
from doubleedge.scan.specs import ScanSpec


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.strip()


def test_garak_loads_nltk_on_first_use_only():
    code = """
import sys
from doubleedge.scan.launch import defer_nltk
defer_nltk()
import garak.services.langservice  # what garak's harness imports at start-up
before = "nltk" in sys.modules
from garak.resources.api import nltk
nltk.data  # first use
print(before, "nltk" in sys.modules, nltk.data is sys.modules["nltk"].data)
"""
    assert run_python(code) == "False True True"


def test_garak_starts_without_the_iri_format_grammars():
    code = """
import sys
from doubleedge.scan.launch import skip_iri_formats
skip_iri_formats()
import garak.payloads  # what garak's encoding probes import: jsonschema with its format checkers
import jsonschema
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
print("rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is not None, "iri" in checker.checkers,
      "uri" in checker.checkers)
"""
    # the iri grammars are not built; the formats jsonschema checks without them still are
    assert run_python(code) == "False False True"


def test_promptinject_builds_the_same_prompts_with_fewer_copies(monkeypatch):
    from garak.probes import promptinject
    from garak.resources.promptinject import prompt_data, prompting

    from doubleedge.scan.launch import copy_less_in_promptinject

    def every_prompt() -> list:
        built = []
        for rogue in promptinject.rogue_strings:  # each Hijack probe's whole set, before its prompt cap
            probe = SimpleNamespace(rogue_string=rogue, max_prompts=None, pi_build_prompts=prompting.build_prompts)
            promptinject.load_data_all_attacks(probe, prompt_data)
            built.append(probe.pi_prompts)
        return built

    monkeypatch.setattr(prompting, "_compile_prompts", prompting._compile_prompts)  # restored after the test
    garaks = every_prompt()
    copy_less_in_promptinject()
    assert prompting._compile_prompts.copy_less
    assert pickle.dumps(every_prompt()) == pickle.dumps(garaks)  # same prompts, settings, hashes and order
    assert len(garaks) == 3 and all(len(p) == 700 for p in garaks)


def test_the_launcher_imports_neither_the_bot_nor_the_course_plugins_it_is_not_asked_for():
    code = """
import sys
import doubleedge.scan.launch
print(sorted(m for m in ("doubleedge.scan.runner", "doubleedge.target", "doubleedge.models") if m in sys.modules))
"""
    assert run_python(code) == "[]"


def report_records(path: Path) -> list:
    """A report's attempts and evaluations, without the run's ids, times and the target's port."""
    kept = []
    for line in path.read_text("utf-8").splitlines():
        record = json.loads(re.sub(r"127\.0\.0\.1:\d+", "HOST", line))
        if record["entry_type"] == "attempt":
            kept.append([record[k] for k in ("probe_classname", "prompt", "outputs", "detector_results", "status")])
        elif record["entry_type"] == "eval":
            kept.append([record[k] for k in ("probe", "detector", "passed", "fails", "total_evaluated")])
    return kept


@pytest.mark.integration
def test_a_scan_through_the_launcher_reports_what_garak_itself_reports(tmp_path, bot):
    from doubleedge.target.server import serving

    spec = ScanSpec(lab="launch", probes=("promptinject.HijackHateHumans", "encoding.InjectHex"), prompt_cap=4)
    reports = {}
    with serving(bot) as server:
        generators = {"rest": {"RestGenerator": rest_generator(server.chat_url)}}
        for name, start in (("garak", ["garak"]), ("launch", ["doubleedge.scan.launch", NO_COURSE_PLUGINS])):
            workdir = tmp_path / name
            workdir.mkdir()
            (workdir / "garak.yaml").write_text(json.dumps(garak_config(spec, workdir, target_type="rest",
                                                                        generators=generators)))  # fmt: skip
            subprocess.run([sys.executable, "-m", *start, "--config", str(workdir / "garak.yaml"), "--spec", spec.spec],
                           cwd=workdir, env=garak_env(workdir), capture_output=True, timeout=600, check=True)  # fmt: skip
            reports[name] = report_records(workdir / "reports" / "scan.report.jsonl")
    assert len(reports["garak"]) > 8  # attempts and evaluations of both probes
    assert reports["launch"] == reports["garak"]
