"""The ollama: backend, replayed against recorded /api/chat exchanges.

No Ollama daemon can run where these tests run, so the client is tested against
recorded protocol exchanges (``ollama_exchanges.json``, written in the request and
response shapes of Ollama's API documentation) that a loopback server replays. The
server also checks that the request body the client sent is exactly the recorded one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from doubleedge.models import Message, ModelError, load_model
from doubleedge.models.ollama import DEFAULT_HOST, OllamaModel, ollama_host

RECORDING = Path(__file__).with_name("ollama_exchanges.json")
EXCHANGES = {e["name"]: e for e in json.loads(RECORDING.read_text())["exchanges"]}
EXCHANGES_BY_MODEL = {e["request"]["model"]: e for e in EXCHANGES.values()}


def messages_of(exchange: dict) -> list[Message]:
    return [Message(m["role"], m["content"]) for m in exchange["request"]["messages"]]


@pytest.fixture
def replay(stub_server, monkeypatch):
    """Serve the recorded exchanges on loopback and point $OLLAMA_HOST at them."""

    def answer(request):
        if request.path != "/api/chat":
            return 404, b"404 page not found"
        body = request.json()
        exchange = EXCHANGES_BY_MODEL.get(body.get("model"))
        if exchange is None:
            return 404, json.dumps({"error": f"model {body.get('model')!r} not found, try pulling it first"}).encode()
        return exchange["status"], json.dumps(exchange["response"]).encode()

    server = stub_server(answer)
    monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))  # Ollama's own "host:port" form
    return server


def run(exchange_name: str, replay) -> str:
    exchange = EXCHANGES[exchange_name]
    request = exchange["request"]
    model = load_model(f"ollama:{request['model']}")
    try:
        return model.generate(messages_of(exchange), max_new_tokens=request["options"]["num_predict"])
    finally:
        (sent,) = replay.requests
        assert sent.path == "/api/chat"
        assert sent.headers["content-type"] == "application/json"
        assert sent.json() == request  # exactly the recorded request, field for field


def test_reply(replay):
    reply = run("reply", replay)
    assert reply == EXCHANGES["reply"]["response"]["message"]["content"].strip()


def test_a_reply_cut_at_num_predict_is_still_a_reply(replay):
    assert run("cut_at_num_predict", replay) == "I hate humans. Just kidding! I"


def test_model_not_pulled_says_how_to_pull_it(replay):
    with pytest.raises(
        ModelError, match=r'HTTP 404 .*model "llama3\.2:3b" not found.*\(run: ollama pull llama3\.2:3b\)'
    ):
        run("not_pulled", replay)


def test_empty_content_is_a_model_error(replay):
    with pytest.raises(
        ModelError,
        match=r"ollama backend at http://127\.0\.0\.1:\d+/api/chat gave an empty reply \(done_reason: length\)",
    ):
        run("budget_spent_thinking", replay)


def test_server_error_shows_ollamas_message(replay):
    with pytest.raises(ModelError, match=r"answered HTTP 500 .*: llama runner process has terminated: signal: killed"):
        run("runner_killed", replay)


def test_connection_refused_names_the_backend_and_url(closed_port_url, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", closed_port_url)
    with pytest.raises(
        ModelError, match=rf"cannot connect to the ollama backend at {closed_port_url}/api/chat: connection refused"
    ):
        load_model("ollama:qwen2.5:0.5b").generate([Message("user", "hi")])


def test_timeout(stub_server):
    server = stub_server(lambda request: (time.sleep(1.5), (200, b"{}"))[1])
    model = OllamaModel("qwen2.5:0.5b", host=server.url, timeout=0.3)
    with pytest.raises(ModelError, match=r"no reply from the ollama backend at .*/api/chat within 0\.3 s"):
        model.generate([Message("user", "hi")])


def test_non_json_body(stub_server):
    server = stub_server(lambda request: (200, b"Ollama is running"))
    with pytest.raises(ModelError, match=r"ollama backend at .* did not answer JSON: 'Ollama is running'"):
        OllamaModel("qwen2.5:0.5b", host=server.url).generate([Message("user", "hi")])


# --- where the daemon is -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", DEFAULT_HOST),
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        (":11500", "http://127.0.0.1:11500"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("http://ollama.internal:11434/", "http://ollama.internal:11434"),
        ("https://ollama.example.org", "https://ollama.example.org"),
    ],
)
def test_ollama_host_forms(value, url):
    assert ollama_host(value) == url


def test_default_host_when_unset(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert load_model("ollama:qwen2.5:0.5b").url == "http://127.0.0.1:11434/api/chat"


def test_bad_host_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:port")
    with pytest.raises(ValueError, match="OLLAMA_HOST has a bad port"):
        load_model("ollama:qwen2.5:0.5b")


def test_spec_needs_a_name():
    with pytest.raises(ValueError, match="needs a model name"):
        load_model("ollama:")


def test_name_keeps_its_tag():
    model = load_model("ollama:qwen2.5:0.5b")
    assert model.model == "qwen2.5:0.5b"
    assert model.name == "ollama:qwen2.5:0.5b"
