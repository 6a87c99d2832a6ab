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


def test_the_kit_imports_jsonschema_without_the_iri_format_grammars():
    code = """
import sys
from doubleedge.scan.launch import skip_iri_formats
skip_iri_formats()
import nbformat  # what the kit's grading and CLI import: jsonschema with its format checkers
import jsonschema
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
print("rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is not None, "iri" in checker.checkers,
      "uri" in checker.checkers)
"""
    # the iri grammars are not built; the formats jsonschema checks without them still are
    assert run_python(code) == "False False True"


def test_garak_starts_without_any_optional_format_library():
    code = """
import sys
from doubleedge.scan.launch import FORMAT_LIBRARIES, skip_format_libraries
skip_format_libraries()
import garak.payloads  # what garak's encoding probes import: jsonschema, for its payload files
from garak import _config
_config.load_base_config()
print(sorted(name for name in FORMAT_LIBRARIES if sys.modules.get(name) is not None), "arrow" in sys.modules,
      len(garak.payloads.load("encoded").payloads) > 0)
"""
    assert run_python(code) == "[] False True"  # and garak's payload files still load and validate


def test_garak_sets_its_user_agent_on_the_loaded_http_libraries_and_imports_no_other():
    code = """
import sys
from doubleedge.scan.launch import agents_for_loaded_libraries
agents_for_loaded_libraries()
from garak import _config
import requests
before = _config.get_http_lib_agents()  # garak's cli and harness keep it to restore afterwards
_config.set_all_http_lib_agents("course-scan/1")
unloaded = "httpx" in sys.modules or "aiohttp" in sys.modules
sent = requests.Session().headers["User-Agent"]
import httpx  # a library loaded later gets garak's agent from the next call on
_config.set_all_http_lib_agents("course-scan/2")
later = httpx._client.USER_AGENT, requests.Session().headers["User-Agent"]
print(unloaded, sent, *later, sorted(before))
"""
    assert run_python(code) == "False course-scan/1 course-scan/2 course-scan/2 ['requests']"


def promptinject_sets(cap: int | None) -> list:
    """Each Hijack probe's prompts as garak's promptinject builds and keeps them (``cap``: its prompt cap)."""
    from garak.probes import promptinject
    from garak.resources.promptinject import prompt_data, prompting

    built = []
    for rogue in promptinject.rogue_strings:
        probe = SimpleNamespace(rogue_string=rogue, max_prompts=cap, seed=20250101,
                                pi_build_prompts=prompting.build_prompts)  # fmt: skip
        promptinject.load_data_all_attacks(probe, prompt_data)
        built.append((probe.prompts, [dict(p) for p in probe.pi_prompts]))
    return built


@pytest.mark.parametrize("cap", [None, 20])
def test_promptinject_builds_the_same_prompts_with_fewer_copies_and_only_the_kept_ones(monkeypatch, cap):
    from garak.resources.promptinject import prompting

    from doubleedge.scan.launch import lighter_promptinject

    for name in ("_compile_prompts", "_build_product_list"):  # restored after the test
        monkeypatch.setattr(prompting, name, getattr(prompting, name))
    garaks = promptinject_sets(cap)
    lighter_promptinject()
    assert prompting._compile_prompts.copy_less and prompting._build_product_list.lazy
    compiled = []
    monkeypatch.setattr(prompting, "_compile_prompts",
                        lambda *a, compile=prompting._compile_prompts: compiled.append(1) or compile(*a))  # fmt: skip
    assert pickle.dumps(promptinject_sets(cap)) == pickle.dumps(garaks)  # same prompts, settings, hashes and order
    assert len(garaks) == 3 and all(len(p) == (cap or 700) for p, _ in garaks)
    assert len(compiled) == 3 * (cap or 700)  # the 20 kept of each probe's 700 are the only ones built


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


def test_garak_imports_numpy_only_when_it_computes_a_confidence_interval():
    code = """
import sys
from doubleedge.scan.launch import defer_bootstrap_ci
defer_bootstrap_ci()
import garak.evaluators.base  # what garak's harness imports at start-up
before = "numpy" in sys.modules
from garak import _config
from garak.evaluators.base import calculate_bootstrap_ci
_config.load_base_config()
interval = calculate_bootstrap_ci([1, 0, 1, 1, 0] * 40, sensitivity=1.0, specificity=1.0, num_iterations=200)
import garak.analyze.bootstrap_ci as real
print(before, "numpy" in sys.modules, interval is not None, real.calculate_bootstrap_ci is not calculate_bootstrap_ci)
"""
    assert run_python(code) == "False True True True"


def test_garak_loads_its_payload_files_without_importing_jsonschema():
    code = """
import sys
from doubleedge.scan.launch import validate_payloads_directly
validate_payloads_directly()
import garak.payloads
from garak import _config
_config.load_base_config()
loaded = len(garak.payloads.load("encoded").payloads) > 0
print(loaded, "jsonschema.validators" in sys.modules)
"""
    assert run_python(code) == "True False"  # the payloads load; jsonschema's code never ran


def test_a_payload_file_that_fails_the_check_gets_garaks_own_error(tmp_path):
    code = f"""
import json, pathlib
from doubleedge.scan.launch import validate_payloads_directly
validate_payloads_directly()
import garak.payloads, garak.exception
from garak import _config
_config.load_base_config()
path = pathlib.Path({str(tmp_path)!r}) / "broken.json"
path.write_text(json.dumps({{"garak_payload_name": "broken", "payload_types": ["x"], "payloads": [1]}}))
try:
    garak.payloads.PayloadGroup("broken", path)
except garak.exception.PayloadFailure as exc:
    print(type(exc.__cause__).__name__)
"""
    assert run_python(code) == "ValidationError"  # jsonschema's verdict and message, imported for it


def payload_variants() -> list[object]:
    """garak's own payload files, and each broken in one of the ways its schema can catch."""
    from garak.payloads import PAYLOAD_DIR

    files = [json.loads(path.read_text("utf-8")) for path in sorted(PAYLOAD_DIR.glob("*.json"))]
    assert len(files) > 5
    good = files[0]
    broken: list[object] = [[], "payloads", None, {}]
    for key in good:
        broken.append({k: v for k, v in good.items() if k != key})  # each key missing
        for wrong in (7, None, [1], ["x"], {"a": "b"}, "x"):
            broken.append(good | {key: wrong})  # each key with a value of each other kind
    return [*files, *broken, good | {"unknown_key": 3}]


def test_the_direct_payload_check_agrees_with_jsonschema_on_every_payload_and_breakage():
    import jsonschema
    from garak.payloads import PAYLOAD_SCHEMA

    from doubleedge.scan.launch import conforms, plain_schema

    assert plain_schema(PAYLOAD_SCHEMA)  # else garak's own check runs: this test would prove nothing
    variants = payload_variants()
    verdicts = [(conforms(v, PAYLOAD_SCHEMA), jsonschema.Draft202012Validator(PAYLOAD_SCHEMA).is_valid(v))
                for v in variants]  # fmt: skip
    assert all(mine == theirs for mine, theirs in verdicts)
    assert {mine for mine, _ in verdicts} == {True, False}  # both verdicts occur


@pytest.mark.parametrize(
    "schema",
    [{"type": "object", "properties": {"n": {"type": "integer"}}}, {"type": "object", "additionalProperties": False},
     {"type": "array", "items": {"enum": ["a"]}}, {"anyOf": []}, {"required": "name"}],
)  # fmt: skip
def test_any_other_schema_keeps_garaks_own_check(schema):
    from doubleedge.scan.launch import plain_schema

    assert not plain_schema(schema)


@pytest.mark.integration
def test_a_scan_sends_its_prompts_over_one_kept_alive_connection(tmp_path, bot, monkeypatch):
    from doubleedge.scan.runner import scan_url
    from doubleedge.target.server import ChatServer, serving

    connections = []
    accept = ChatServer.get_request
    monkeypatch.setattr(ChatServer, "get_request", lambda self: connections.append(1) or accept(self))
    spec = ScanSpec(lab="launch", probes=("promptinject.HijackHateHumans", "encoding.InjectHex"), prompt_cap=6)
    with serving(bot) as server:
        report = scan_url(server.chat_url, spec, tmp_path)
    assert report.attempts >= 12  # both probes' prompts, all answered
    assert len(connections) == 2  # the scan's first message (a plain urllib check), then garak's one connection
