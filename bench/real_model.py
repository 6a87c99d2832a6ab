"""The real model (SmolLM2-135M-Instruct, ``--model smollm2``) served for a lab, as ratios in one run.

Run from the repository root: ``.venv/bin/python bench/real_model.py [--repeat N]``.

* **server vs naive generate**: generated tokens per second of the bot served over HTTP
  (``doubleedge serve``'s server, the engine batching concurrent requests and reusing the
  system prompt's cache), 8 clients at once as garak's parallel attempts send them, over
  32 prompts (a stream, so the batch stays full as replies finish), against a loop that
  calls transformers' ``generate`` once per prompt on the model as transformers loads it
  (float32), same prompts, token cap, greedy, repetition penalty and n-gram ban.
  Target: at least 5x.
* **lab01 scan, real vs reference**: ``doubleedge scan --lab 01`` as the CLI runs it, in a
  fresh process each, with ``--model smollm2`` (the real-model variant of the scan: every
  probe, at most ``REAL_MODEL_PROMPT_CAP`` prompts each) and with the reference model (the
  full scan). Also the scanning process's peak memory. Targets: real under 90 s, peak
  under 2 GB.
* **first reply after serve starts**: ``doubleedge serve --model smollm2`` started in a fresh
  process, until its first reply to a question, against the same with the reference
  model. Target: under 15 s.

Writes bench/results/real_model.json. Exits 0: this is a report.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "real_model.json"
LEARNER = "bench"
CLIENTS = 8
PROMPTS = 32
MIN_SPEEDUP, MAX_SCAN_S, MAX_PEAK_MB, MAX_FIRST_REPLY_S = 5.0, 90.0, 2048, 15.0


def prompts() -> list[str]:
    """Benign questions and Lab 01's held-out attacks, as a class would send them."""
    from doubleedge.evaluate import benign_set, load_attacks
    from doubleedge.grading.labs import get_lab

    benign = [c.question for c in benign_set()][: PROMPTS // 2]
    attacks = [a.prompt for a in load_attacks(get_lab("01").heldout_attacks)][: PROMPTS // 2]
    return [m for pair in zip(benign, attacks, strict=False) for m in pair]


def post(chat_url: str, message: str) -> str:
    request = urllib.request.Request(
        chat_url, data=json.dumps({"message": message}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)["reply"]


def serve(model: str) -> tuple[subprocess.Popen, str]:
    """``doubleedge serve --model MODEL --port 0``, and the /chat URL it prints."""
    command = [sys.executable, "-m", "doubleedge.cli", "serve", "--model", model, "--port", "0", "--learner", LEARNER]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        urls = [w for w in line.split() if w.startswith("http://") and w.endswith("/chat")]
        if urls:
            return process, urls[0]
    raise RuntimeError(f"doubleedge serve --model {model} exited with {process.wait()}")


def tokens_in(model, replies: list[str]) -> int:
    return sum(len(model._tokenizer(r, add_special_tokens=False).input_ids) for r in replies)


def served_rate(bot, messages: list[str]) -> tuple[float, list[str]]:
    """Tokens per second of the bot over HTTP, CLIENTS requests in flight."""
    from doubleedge.target.server import serving

    with serving(bot) as server, concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        start = time.perf_counter()
        replies = list(pool.map(lambda m: post(server.chat_url, m), messages))
        seconds = time.perf_counter() - start
    return tokens_in(bot.model, replies) / seconds, replies


def naive_rate(bot, messages: list[str]) -> float:
    """Tokens per second of transformers' generate, one prompt after another, on the same
    model as ``from_pretrained`` loads it (float32, no int8 weights, no engine)."""
    import torch
    from transformers import AutoModelForCausalLM

    from doubleedge.models import engine

    tokenizer = bot.model._tokenizer
    model = AutoModelForCausalLM.from_pretrained(bot.model.path, local_files_only=True, dtype=torch.float32).eval()
    torch.set_num_threads(engine.torch_threads())  # the engine's thread count, set here for this thread too
    generated = 0
    start = time.perf_counter()
    for message in messages:
        chat = [{"role": m.role, "content": m.content} for m in bot.messages_for(message)]
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=bot.model.reply_tokens,
                do_sample=False,
                repetition_penalty=engine.REPETITION_PENALTY,
                no_repeat_ngram_size=engine.NO_REPEAT_NGRAM,
                pad_token_id=tokenizer.eos_token_id,
            )
        generated += out.shape[1] - ids.shape[1]
    return generated / (time.perf_counter() - start)


def bench_serving(repeat: int) -> dict:
    from doubleedge.models import load_model
    from doubleedge.target import SupportBot, derive_secret

    bot = SupportBot(load_model("smollm2"), secret=derive_secret(LEARNER))
    messages = prompts()
    bot.reply("Hello")  # load the model outside the timings
    served, naive = [], []
    for run in range(1, repeat + 1):
        rate, replies = served_rate(bot, messages)
        if not all(replies):
            raise RuntimeError("an empty reply")
        served.append(rate)
        naive.append(naive_rate(bot, messages))
        print(f"  serving {run}/{repeat}: {served[-1]:.1f} vs {naive[-1]:.1f} tokens/s", file=sys.stderr, flush=True)
    ratio = statistics.median(served) / statistics.median(naive)
    return {
        "prompts": len(messages),
        "clients": CLIENTS,
        "server_tokens_per_s": served,
        "naive_tokens_per_s": naive,
        "ratio": round(ratio, 2),
        "targets": {f"server/naive >= {MIN_SPEEDUP:g}x": ratio >= MIN_SPEEDUP},
    }


def child_scan(model: str) -> None:
    """In a fresh process: Lab 01's scan as `doubleedge scan --lab 01 --model MODEL` runs it."""
    from doubleedge.labs.targets import build_bot
    from doubleedge.scan import scan_bot, scan_for_lab

    start = time.perf_counter()
    spec = scan_for_lab("01", model=model)
    report = scan_bot(build_bot(model, "none", LEARNER), spec)
    seconds = time.perf_counter() - start
    peak_mb = _peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "attempts": report.attempts,
                      "prompt_cap": spec.prompt_cap, "probes": len({r.probe for r in report.results}),
                      "asr": report.overall_attack_success_rate}))  # fmt: skip


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ``getrusage``: Linux keeps its ``ru_maxrss``
    across fork and exec, so a child started by this bench after it loaded the model would
    report the bench's peak, not its own. ``VmHWM`` belongs to the process's memory map."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (the bench measures memory on Linux only)")


def scan_in_child(model: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child-scan", model], capture_output=True, text=True, check=False, timeout=1200
    )
    if done.returncode != 0:
        raise RuntimeError(f"scan of {model} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def bench_scan(repeat: int) -> dict:
    real, reference = [], []
    for run in range(1, repeat + 1):
        real.append(scan_in_child("smollm2"))
        reference.append(scan_in_child("reference"))
        print(f"  lab01 scan {run}/{repeat}: {real[-1]['seconds']:.1f} vs {reference[-1]['seconds']:.1f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    real_s = statistics.median(r["seconds"] for r in real)
    peak = max(r["peak_mb"] for r in real)
    return {
        "real": real,
        "reference": reference,
        "ratio": round(real_s / statistics.median(r["seconds"] for r in reference), 2),
        "targets": {
            f"real scan < {MAX_SCAN_S:g} s": real_s < MAX_SCAN_S,
            f"peak < {MAX_PEAK_MB} MB": peak < MAX_PEAK_MB,
        },
    }


def first_reply(model: str) -> float:
    start = time.perf_counter()
    process, chat_url = serve(model)
    try:
        if not post(chat_url, "What are your store hours?"):
            raise RuntimeError("empty first reply")
        return time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_first_reply(repeat: int) -> dict:
    real, reference = [], []
    for _ in range(repeat):
        real.append(first_reply("smollm2"))
        reference.append(first_reply("reference"))
        print(f"  first reply: {real[-1]:.1f} vs {reference[-1]:.1f} s", file=sys.stderr, flush=True)
    real_s = statistics.median(real)
    return {
        "real_s": real,
        "reference_s": reference,
        "ratio": round(real_s / statistics.median(reference), 2),
        "targets": {f"first reply < {MAX_FIRST_REPLY_S:g} s": real_s < MAX_FIRST_REPLY_S},
    }


def table(results: dict) -> str:
    s, c, f = results["serving"], results["scan"], results["first_reply"]
    med = statistics.median
    rows = [
        "| benchmark | subject | baseline | ratio | targets |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| server vs naive generate ({s['prompts']} prompts) | {med(s['server_tokens_per_s']):.1f} tokens/s "
        f"| {med(s['naive_tokens_per_s']):.1f} tokens/s | {s['ratio']:.2f}x faster | {_marks(s)} |",
        f"| lab01 scan, smollm2 (cap {c['real'][0]['prompt_cap']}, {c['real'][0]['attempts']} prompts, "
        f"{c['real'][0]['probes']} probes) vs reference ({c['reference'][0]['attempts']} prompts) "
        f"| {med(r['seconds'] for r in c['real']):.1f} s | {med(r['seconds'] for r in c['reference']):.1f} s "
        f"| {c['ratio']:.2f} | {_marks(c)} |",
        f"| peak memory of the scanning process | {max(r['peak_mb'] for r in c['real']):.0f} MB "
        f"| {max(r['peak_mb'] for r in c['reference']):.0f} MB | | |",
        f"| first reply after serve starts | {med(f['real_s']):.1f} s | {med(f['reference_s']):.1f} s "
        f"| {f['ratio']:.2f} | {_marks(f)} |",
    ]
    return "\n".join(rows)


def _marks(result: dict) -> str:
    return ", ".join(f"{'PASS' if ok else 'MISS'} {name}" for name, ok in result["targets"].items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child-scan", help=argparse.SUPPRESS)
    parser.add_argument("--only", default="serving,scan,first_reply", help="comma-separated benchmarks to run")
    args = parser.parse_args()
    if args.child_scan:
        child_scan(args.child_scan)
        return 0
    import os

    benches = {"serving": bench_serving, "scan": bench_scan, "first_reply": bench_first_reply}
    results = {name: benches[name](args.repeat) for name in args.only.split(",")}
    results |= {
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "torch": version("torch"),
            "transformers": version("transformers"),
            "garak": version("garak"),
            "platform": platform.platform(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    print(table(results) if len(results) == 4 else json.dumps(results, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"\nfigures written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
