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
    assert settings["skip_codes"] == [502] and settings["retry_5xx"] is False
    assert settings["headers"]["Content-Type"] == "application/json"
