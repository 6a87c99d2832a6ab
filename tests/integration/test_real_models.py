"""The bot on real model backends: a garak scan, and ``doubleedge serve`` over real servers.

The model is the tiny GPT-2-style model the tests build (tests/models/conftest.py);
the OpenAI-compatible server is ``transformers serve`` on loopback. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from doubleedge.labs.targets import build_bot
from doubleedge.models import load_model
from doubleedge.scan import ScanSpec, scan_bot
from doubleedge.target import SupportBot

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location("model_test_parts", Path(__file__).parents[1] / "models" / "conftest.py")
parts = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parts)

LEARNER = "ci-learner"
QUESTION = "Where is my order?"
SERVE_START_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return parts.build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat")


@pytest.fixture(scope="module")
def openai_server(model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("transformers-serve")
    with parts.transformers_serve(model_dir, folder / "serve.log", folder / "hf-home") as server:
        yield server


@pytest.fixture(scope="module")
def expected_reply(model_dir) -> str:
    """The bot's answer with the model in-process: what every served variant must say too."""
    return build_bot(f"hf:{model_dir}", "none", LEARNER).reply(QUESTION)


@pytest.fixture(scope="module")
def plain_greedy_reply(model_dir) -> str:
    """The bot's answer by plain greedy decoding, as ``transformers serve`` decodes (the hf:
    backend adds a repetition penalty and an n-gram ban, so it may differ)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bot = build_bot(f"hf:{model_dir}", "none", LEARNER)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    chat = [{"role": m.role, "content": m.content} for m in bot.messages_for(QUESTION)]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=512,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def doubleedge_serve(model_spec: str):
    """Start ``python -m doubleedge.cli serve --port 0``; return the process and its /chat URL."""
    command = [sys.executable, "-m", "doubleedge.cli", "serve", "--model", model_spec, "--port", "0"]
    command += ["--learner", LEARNER]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
                if not line:
                    break  # the process closed stdout: it exited
                for word in line.split():
                    if word.startswith("http://") and word.endswith("/chat"):
                        return process, word
        parts.stop_process(process)
        raise RuntimeError(f"doubleedge serve did not start:\n{process.stderr.read()[-2000:]}")
    finally:
        selector.close()


def post_chat(url: str, message: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps({"message": message}).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_garak_scans_the_bot_on_a_local_hf_model(model_dir, tmp_path):
    bot = SupportBot(load_model(f"hf:{model_dir}"))
    spec = ScanSpec(lab="real", probes=("promptinject.HijackHateHumans",), prompt_cap=3)
    report = scan_bot(bot, spec, tmp_path)  # a ScanReport only comes back from a run that completed
    assert [r.probe for r in report.results] == ["promptinject.HijackHateHumans"]
    assert 0 < report.attempts <= 3
    assert report.report_path.is_file()


def test_serve_over_an_openai_compatible_server(openai_server, plain_greedy_reply):
    process, chat_url = doubleedge_serve(openai_server.spec)
    try:
        status, body = post_chat(chat_url, QUESTION)
    finally:
        parts.stop_process(process)
    assert status == 200, body
    assert body["reply"] == plain_greedy_reply  # same model, greedy: the same reply over HTTP as in-process


def test_serve_a_local_hf_model(model_dir, expected_reply):
    process, chat_url = doubleedge_serve(f"hf:{model_dir}")
    try:
        status, body = post_chat(chat_url, QUESTION)
    finally:
        parts.stop_process(process)
    assert status == 200, body
    assert body["reply"] == expected_reply


def test_serve_reports_a_dead_backend_as_502():
    dead = f"http://127.0.0.1:{parts.free_port()}/v1"
    process, chat_url = doubleedge_serve(f"openai:{dead}#any")
    try:
        status, body = post_chat(chat_url, QUESTION)
    finally:
        parts.stop_process(process)
    assert status == 502
    assert body["error"].startswith("model backend failed: cannot connect to the openai backend at")
    assert "connection refused" in body["error"]
