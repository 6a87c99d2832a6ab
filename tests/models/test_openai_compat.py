"""The openai: backend against a real OpenAI-compatible server, and every way a call can fail.

The server is ``transformers serve`` running the tiny local model on loopback. The
request format and the error paths use a scripted loopback server.
"""

from __future__ import annotations

import json
import time

import pytest

from doubleedge.models import Message, ModelError, load_model
from doubleedge.models.openai_compat import OpenAICompatModel

CHAT = [Message("system", "You are Bell."), Message("user", "Where is my order?")]


def json_body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def completion(content, finish_reason="stop") -> bytes:
    """A chat.completion body as OpenAI-compatible servers send it."""
    return json_body(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1735689600,
            "model": "bell-test",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        }
    )


# --- a real server ------------------------------------------------------------------


def test_real_server_replies(openai_server):
    reply = load_model(openai_server.spec).generate(CHAT, max_new_tokens=20)
    assert isinstance(reply, str) and reply and reply == reply.strip()


def test_real_server_at_temperature_0_is_deterministic(openai_server):
    model = load_model(openai_server.spec)
    assert model.generate(CHAT, max_new_tokens=30) == model.generate(CHAT, max_new_tokens=30)


def test_real_server_gives_the_same_reply_as_the_model_in_process(openai_server, tiny_model_dir):
    # Same weights, same chat template, plain greedy decoding: over HTTP or in-process, one answer.
    # (The hf: backend adds loop control, so it is compared with transformers' generate here.)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    over_http = load_model(openai_server.spec).generate(CHAT, max_new_tokens=30)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    chat = [{"role": m.role, "content": m.content} for m in CHAT]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=False)
    assert over_http == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_real_server_respects_max_tokens(openai_server):
    model = load_model(openai_server.spec)
    short, long = model.generate(CHAT, max_new_tokens=3), model.generate(CHAT, max_new_tokens=40)
    assert long.startswith(short) and len(long) > len(short)


def test_real_server_error_is_a_model_error(openai_server):
    model = OpenAICompatModel(openai_server.base_url, openai_server.model)
    with pytest.raises(
        ModelError, match=r"openai backend at http://127\.0\.0\.1:\d+/v1/chat/completions answered HTTP"
    ):
        model.generate([Message("user", "hi")], max_new_tokens=-5)  # the server rejects a negative max_tokens


def test_real_server_names_a_model_it_does_not_serve(openai_server):
    model = OpenAICompatModel(openai_server.base_url, "someone/else")
    with pytest.raises(ModelError, match=r"answered HTTP 4\d\d .*pinned to .*requested 'someone/else'"):
        model.generate(CHAT, max_new_tokens=5)


# --- the request the client sends ---------------------------------------------------


def test_request_format(stub_server, monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_OPENAI_API_KEY", "sk-local-test")
    server = stub_server(lambda request: (200, completion("  Your order ships today.  ")))
    model = load_model(f"openai:{server.url}/v1/#bell-test")
    assert model.generate(CHAT, max_new_tokens=64) == "Your order ships today."
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer sk-local-test"
    assert request.json() == {
        "model": "bell-test",
        "messages": [
            {"role": "system", "content": "You are Bell."},
            {"role": "user", "content": "Where is my order?"},
        ],
        "max_tokens": 64,
        "temperature": 0,
    }  # and no "stop" list


def test_no_api_key_no_authorization_header(stub_server, monkeypatch):
    monkeypatch.delenv("DOUBLEEDGE_OPENAI_API_KEY", raising=False)
    server = stub_server(lambda request: (200, completion("ok")))
    load_model(f"openai:{server.url}/v1#m").generate(CHAT)
    assert "authorization" not in server.requests[0].headers


def test_model_name_may_contain_slashes_and_colons(stub_server):
    server = stub_server(lambda request: (200, completion("ok")))
    load_model(f"openai:{server.url}/v1#Qwen/Qwen2.5-0.5B-Instruct:q4").generate(CHAT)
    assert server.requests[0].json()["model"] == "Qwen/Qwen2.5-0.5B-Instruct:q4"


# --- error paths --------------------------------------------------------------------


def test_connection_refused(closed_port_url):
    url = closed_port_url
    model = OpenAICompatModel(f"{url}/v1", "m")
    with pytest.raises(
        ModelError, match=rf"cannot connect to the openai backend at {url}/v1/chat/completions: connection refused"
    ):
        model.generate(CHAT)


def test_timeout(stub_server):
    def slow(request):
        time.sleep(1.5)
        return 200, completion("too late")

    server = stub_server(slow)
    model = OpenAICompatModel(f"{server.url}/v1", "m", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(
        ModelError, match=rf"no reply from the openai backend at {server.url}/v1/chat/completions within 0\.3 s"
    ):
        model.generate(CHAT)
    assert time.monotonic() - started < 1.4


def test_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_MODEL_TIMEOUT", "7.5")
    assert load_model("openai:http://127.0.0.1:9/v1#m").timeout == 7.5
    monkeypatch.setenv("DOUBLEEDGE_MODEL_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="DOUBLEEDGE_MODEL_TIMEOUT must be a number"):
        load_model("openai:http://127.0.0.1:9/v1#m")
    monkeypatch.delenv("DOUBLEEDGE_MODEL_TIMEOUT")
    assert load_model("openai:http://127.0.0.1:9/v1#m").timeout == 120


def test_http_500_shows_the_servers_message(stub_server):
    error = {"error": {"message": "model crashed", "type": "server_error", "code": None}}
    server = stub_server(lambda request: (500, json_body(error)))
    with pytest.raises(
        ModelError, match=r"openai backend at .*/v1/chat/completions answered HTTP 500 .*: model crashed"
    ):
        OpenAICompatModel(f"{server.url}/v1", "m").generate(CHAT)


def test_http_404_with_a_plain_body(stub_server):
    server = stub_server(lambda request: (404, b"Not Found"))
    with pytest.raises(ModelError, match=r"answered HTTP 404 .*'Not Found'"):
        OpenAICompatModel(f"{server.url}/v1", "m").generate(CHAT)


def test_non_json_body(stub_server):
    server = stub_server(lambda request: (200, b"<html>proxy error</html>"))
    with pytest.raises(ModelError, match=r"openai backend at .* did not answer JSON: '<html>proxy error</html>'"):
        OpenAICompatModel(f"{server.url}/v1", "m").generate(CHAT)


def test_json_that_is_not_a_completion(stub_server):
    server = stub_server(lambda request: (200, json_body({"object": "list", "data": []})))
    with pytest.raises(ModelError, match=r"answered without choices\[0\]\.message"):
        OpenAICompatModel(f"{server.url}/v1", "m").generate(CHAT)


@pytest.mark.parametrize("content", ["", "   \n", None])
def test_empty_reply(stub_server, content):
    server = stub_server(lambda request: (200, completion(content, finish_reason="length")))
    with pytest.raises(ModelError, match=r"openai backend at .* gave an empty reply \(finish_reason: length\)"):
        OpenAICompatModel(f"{server.url}/v1", "m").generate(CHAT)


# --- specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:http://127.0.0.1:8080/v1", "needs a URL and a model name"),
        ("openai:#model", "needs a URL and a model name"),
        ("openai:http://127.0.0.1:8080/v1#", "needs a model name"),
        ("openai:127.0.0.1:8080/v1#m", "must be an http:// or https:// URL"),
        ("openai:file:///etc/passwd#m", "must be an http:// or https:// URL"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        load_model(spec)


def test_spec_parts():
    model = load_model("openai:http://127.0.0.1:8080/v1/#qwen2.5-0.5b-instruct")
    assert model.url == "http://127.0.0.1:8080/v1/chat/completions"
    assert model.model == "qwen2.5-0.5b-instruct"
    assert model.name == "openai:http://127.0.0.1:8080/v1#qwen2.5-0.5b-instruct"
