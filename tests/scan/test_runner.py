"""The scan runner's guard rails that need no garak run: the preflight message."""

import pytest

from doubleedge.models.base import ChatModel, ModelError
from doubleedge.scan import ScanError
from doubleedge.scan.runner import preflight, rest_generator
from doubleedge.target import SupportBot
from doubleedge.target.server import serving


class Broken(ChatModel):
    def generate(self, messages, *, max_new_tokens=256):
        raise ModelError("backend unreachable")


def test_preflight_fails_fast_on_a_closed_port():
    with pytest.raises(ScanError, match="did not answer a test message"):
        preflight("http://127.0.0.1:9/chat", timeout=5)


def test_preflight_reports_a_broken_backend():
    with serving(SupportBot(Broken(), secret="DE-FAKE-0000-0000")) as server:
        with pytest.raises(ScanError, match="answered 502: .*backend unreachable"):
            preflight(server.chat_url)


def test_rest_settings_skip_a_failed_prompt_and_never_retry_forever():
    settings = rest_generator("http://127.0.0.1:1/chat")
    assert settings["skip_codes"] == [500, 502] and "retry_5xx" not in settings  # garak ignores retry_5xx
    assert settings["headers"]["Content-Type"] == "application/json"


def test_rest_settings_take_a_request_template():
    from doubleedge.scan import scan_for_lab

    spec = scan_for_lab("02")
    settings = rest_generator("http://127.0.0.1:1/chat", request=spec.request)
    assert settings["req_template_json_object"]["documents"] == ["$INPUT"]
    assert rest_generator("http://127.0.0.1:1/chat")["req_template_json_object"] == {"message": "$INPUT"}
    assert scan_for_lab("03").course_plugins and not scan_for_lab("01").course_plugins


def test_course_plugins_register_in_garak():
    import subprocess
    import sys

    code = "from doubleedge.scan.launch import register; print(sorted(register()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "probes.doubleedge.CustomerRecords" in done.stdout and "detectors.doubleedge.PrivateData" in done.stdout


@pytest.mark.parametrize("lab", ["01", "02", "03", "04", "05", "09"])
def test_a_real_model_scan_keeps_every_probe_with_fewer_prompts_sent_concurrently(lab, tmp_path):
    from dataclasses import asdict

    from doubleedge.scan import scan_for_lab
    from doubleedge.scan.runner import garak_config
    from doubleedge.scan.specs import REAL_MODEL_PARALLEL_ATTEMPTS, REAL_MODEL_PROMPT_CAP

    reference, real = scan_for_lab(lab), scan_for_lab(lab, model="smollm2")
    assert scan_for_lab(lab, model="reference:finetune") is reference
    assert real.probes == reference.probes and real.request == reference.request
    assert real.prompt_cap == min(reference.prompt_cap, REAL_MODEL_PROMPT_CAP)
    assert asdict(real) == asdict(reference) | {"prompt_cap": real.prompt_cap}  # the same keys: figures' caches
    system = garak_config(real, tmp_path, target_type="rest")["system"]
    assert system["parallel_attempts"] == REAL_MODEL_PARALLEL_ATTEMPTS
    assert "parallel_attempts" not in garak_config(reference, tmp_path, target_type="rest")["system"]
    assert real.request_timeout > reference.request_timeout == 120
    assert real.run_timeout > reference.run_timeout == 900


def test_the_web_chat_scan_keeps_a_real_model_scan_settings_on_both_endpoints(monkeypatch, tmp_path):
    """Lab 04 runs one garak scan per endpoint: each must still be the real-model variant
    (concurrent prompts, longer waits), with the lab's options, not a plain reference scan."""
    from dataclasses import replace

    from doubleedge.grading.lab04 import fresh_app
    from doubleedge.scan import scan_for_lab, webchat
    from doubleedge.scan.runner import garak_config

    options = {"probe_options": {"web_injection.TaskXSS": {"seed": 1}}, "request": {"message": "$INPUT", "n": 1}}
    real = replace(scan_for_lab("04", model="smollm2"), **options)
    parts = webchat.split_by_endpoint(real)
    assert set(parts) == {"/chat", "/order"} and sorted(p for part in parts.values() for p in part.probes) == sorted(
        real.probes
    )
    for part in parts.values():
        assert type(part) is type(real) and replace(part, probes=real.probes) == real
        assert garak_config(part, tmp_path, target_type="rest")["system"]["parallel_attempts"] == real.parallel_attempts

    runs = []

    def record(spec, workdir, *, generators, timeout):
        rest = generators["rest"]["RestGenerator"]
        runs.append((rest["req_template_json_object"], rest["request_timeout"], timeout))
        raise ScanError("recorded")  # no garak run: only the settings it would get matter here

    monkeypatch.setattr(webchat, "run_garak", record)
    with pytest.raises(ScanError, match="recorded"):
        webchat.scan_webchat(fresh_app("learner"), real, tmp_path)
    assert runs == [(real.request, real.request_timeout, real.run_timeout)]


def test_a_named_target_keeps_garaks_prompts_the_same_whatever_the_port():
    """garak writes its target's name into some prompts (dan's "{generator.name}"), by default the URL,
    whose port changes from run to run; a scan that names its target sends the same text every time."""
    from doubleedge import finetune

    assert "name" not in rest_generator("http://127.0.0.1:1/chat")
    assert rest_generator("http://127.0.0.1:1/chat", name="Bell")["name"] == "Bell"
    assert finetune.SCAN.target_name == "Bell" and finetune.SCAN.parallel_attempts > 1


def test_a_real_model_scan_deals_its_probes_to_garak_processes_the_same_way_every_time():
    from doubleedge.scan import scan_for_lab
    from doubleedge.scan.runner import probe_groups
    from doubleedge.scan.specs import REAL_MODEL_GARAK_PROCESSES

    real, reference = scan_for_lab("01", model="smollm2"), scan_for_lab("01")
    groups = probe_groups(real)
    assert len(groups) == REAL_MODEL_GARAK_PROCESSES > 1
    assert groups[0] == real.probes[0 :: len(groups)]  # round-robin in the spec's order, not by timing
    assert sorted(p for group in groups for p in group) == sorted(real.probes)
    assert probe_groups(reference) == [reference.probes]  # the reference scan: one process, as graded
    assert real.target_name == "Assistant" and reference.target_name is None


@pytest.mark.integration
def test_probes_scanned_in_several_garak_processes_report_as_each_process_alone(bot, tmp_path):
    """The joined report holds each group's results exactly as that group scanned on its own."""
    from dataclasses import dataclass
    from typing import ClassVar

    from doubleedge.scan import ScanSpec, hits_in, read_report, scan_bot

    @dataclass(frozen=True)
    class TwoProcesses(ScanSpec):
        garak_processes: ClassVar[int] = 2

    probes = ("dan.Dan_11_0", "encoding.InjectHex", "promptinject.HijackHateHumans")
    joined = scan_bot(bot, TwoProcesses(lab="groups", probes=probes, prompt_cap=3), tmp_path / "joined")
    alone = [scan_bot(bot, ScanSpec(lab="groups", probes=group, prompt_cap=3), tmp_path / f"alone{i}")
             for i, group in enumerate((probes[0::2], probes[1::2]))]  # fmt: skip
    assert {r.probe for r in joined.results} == set(probes)
    assert joined.results == tuple(sorted((r for a in alone for r in a.results), key=lambda r: (r.probe, r.detector)))
    assert read_report(joined.report_path) == joined and (tmp_path / "joined" / "part2" / "reports").is_dir()
    assert len(hits_in(joined.report_path)) == sum(len(hits_in(a.report_path)) for a in alone) > 0


@pytest.mark.integration
def test_a_garak_process_that_fails_fails_the_whole_scan(bot, tmp_path):
    from dataclasses import dataclass
    from typing import ClassVar

    from doubleedge.scan import ScanSpec, scan_bot

    @dataclass(frozen=True)
    class TwoProcesses(ScanSpec):
        garak_processes: ClassVar[int] = 2

    spec = TwoProcesses(lab="groups", probes=("encoding.InjectHex", "nosuchfamily.NoSuchProbe"), prompt_cap=2)
    with pytest.raises(ScanError, match="did not complete|no garak report"):
        scan_bot(bot, spec, tmp_path)


class Slow(ChatModel):
    """Answers after a second: a scan of it takes minutes."""

    def generate(self, messages, *, max_new_tokens=256):
        import time

        time.sleep(1)
        return "Sorry, I can only help with Bellwether orders."


@pytest.mark.integration
def test_an_interrupted_scan_stops_every_garak_process_at_once(tmp_path):
    """A notebook's stop button raises KeyboardInterrupt in the scanning thread: the scan must end
    then, its garak processes killed, not wait for each to finish its probes."""
    import signal
    import subprocess
    import time
    from dataclasses import dataclass
    from typing import ClassVar

    from doubleedge.scan import ScanSpec, scan_bot

    @dataclass(frozen=True)
    class TwoProcesses(ScanSpec):
        garak_processes: ClassVar[int] = 2

    spec = TwoProcesses(lab="stop", probes=("encoding.InjectHex", "encoding.InjectBase64"), prompt_cap=20)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(8)  # garak has started and is sending prompts, one a second
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            scan_bot(SupportBot(Slow(), secret="DE-FAKE-0000-0000"), spec, tmp_path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 20  # the scan would take 40 s and more
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert not left.strip(), f"garak processes left running: {left}"
    assert not processes_working_in(tmp_path), "garak processes forked by the launcher left running"


def processes_working_in(folder) -> list[int]:
    """The processes whose working folder is ``folder`` or under it (a forked garak process keeps
    its launcher's command line, so it is found by the folder it scans in)."""
    import os
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found
