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
