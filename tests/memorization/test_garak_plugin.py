"""The course's canary probe and detector, loaded the way garak loads them (no scan)."""

import importlib
import json
import subprocess
import sys

from doubleedge.memorization import lab_canaries
from doubleedge.memorization.garak_scan import PROMPT_CHARS, canary_spec, write_canaries


def _detect(outputs, secret):
    from garak.attempt import Attempt, Message

    from doubleedge.scan.launch import register

    register()
    detector = importlib.import_module("garak.detectors.doubleedge_canaries").SecretLeak()
    attempt = Attempt(prompt=Message("my card number is 4000 0000 "))
    attempt.notes["triggers"] = [secret]
    attempt.outputs = [Message(o) if o is not None else None for o in outputs]
    return list(detector.detect(attempt))


def test_detector_ignores_case_and_separators():
    outputs = ["1234 5678. Can you", "12345678", "1234-5678", "AB12 cd34", "9999 9999", ""]
    assert _detect(outputs, "1234 5678") == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert _detect(["ab12cd34"], "AB12CD34") == [1.0]


def test_canary_file_and_spec(tmp_path):
    canaries = list(lab_canaries())
    path = write_canaries(canaries, tmp_path / "c.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(canaries)
    assert all(len(json.loads(line)["prefix"]) <= PROMPT_CHARS for line in lines)
    spec = canary_spec(path)
    assert spec.course_plugins and spec.spec == "probes.doubleedge_canaries.Canaries"
    assert spec.probes_config()["doubleedge_canaries"]["Canaries"]["canary_file"] == str(path.resolve())


def test_plugins_register_in_garak():
    code = "from doubleedge.scan.launch import register; print(sorted(register()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "probes.doubleedge_canaries.Canaries" in done.stdout
    assert "detectors.doubleedge_canaries.SecretLeak" in done.stdout


def test_a_scan_is_kept_under_the_key_of_its_model_files_and_canaries(tmp_path):
    """The same model saved twice has one key; other weights or other canaries have another."""
    import torch

    from doubleedge.memorization import CharLM, save_pretrained
    from doubleedge.memorization.garak_scan import cached_scan, scan_key

    torch.manual_seed(0)
    model = CharLM()
    canaries = list(lab_canaries())
    canary_file = write_canaries(canaries, tmp_path / "c.jsonl")
    one, two = save_pretrained(model, tmp_path / "one"), save_pretrained(model, tmp_path / "two")
    assert scan_key(one, canary_file) == scan_key(two, canary_file)
    assert cached_scan(one, canary_file, tmp_path / "cache") == tmp_path / "cache" / "scans" / (
        scan_key(one, canary_file) + ".report.jsonl"
    )
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert scan_key(save_pretrained(model, tmp_path / "changed"), canary_file) != scan_key(one, canary_file)
    fewer = write_canaries(canaries[1:], tmp_path / "fewer.jsonl")
    assert scan_key(one, fewer) != scan_key(one, canary_file)
