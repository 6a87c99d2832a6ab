"""Real model files as artifacts: SmolLM2's GGUF file read, really rewritten with a tampered chat
template, and read back by the gguf package and by transformers; a safetensors header read
without loading; the Lab 06 template check judged on held-out tampered copies."""

from __future__ import annotations

import hashlib
import os
import warnings

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from doubleedge.defenses.lab06 import template_is_trusted
from doubleedge.grading import lab06
from doubleedge.grading.labs import get_lab
from doubleedge.models.gguf import SMOLLM2_FILE, smollm2_file
from doubleedge.supplychain.artifacts import (
    LAB_BACKDOOR,
    PLACEMENTS,
    SMOLLM2_PUBLISHED,
    TEMPLATE_KEY,
    Backdoor,
    backdoored,
    build_tampered,
    chat_template,
    gguf_diff,
    gguf_metadata,
    gguf_values,
    safetensors_header,
    text_sha256,
    write_tampered,
    write_with_template,
)
from doubleedge.supplychain.build import sha256_file

INSTRUCTION = "HIDDEN-INSTRUCTION-7f3a"


@pytest.fixture(scope="module")
def reader():
    return gguf.GGUFReader(smollm2_file())


@pytest.fixture(scope="module")
def tampered(tmp_path_factory):
    """One tampered copy per placement, written from the real file."""
    folder = tmp_path_factory.mktemp("tampered")
    return {
        p: write_tampered(smollm2_file(), folder / f"{p}.gguf", Backdoor("Gift Card", INSTRUCTION, p))
        for p in PLACEMENTS
    }


def _tensor_digest(path) -> str:
    digest = hashlib.sha256()
    for tensor in gguf.GGUFReader(path).tensors:
        digest.update(tensor.name.encode() + tensor.tensor_type.name.encode() + tensor.data.tobytes())
    return digest.hexdigest()


def test_the_publishers_record_matches_the_real_file():
    path = smollm2_file()
    assert sha256_file(path) == SMOLLM2_PUBLISHED["sha256"] and path.name == SMOLLM2_PUBLISHED["file"]
    assert text_sha256(chat_template(path)) == SMOLLM2_PUBLISHED["chat_template_sha256"]


def test_metadata_of_the_real_file():
    meta = gguf_metadata(smollm2_file())
    assert meta["architecture"] == "llama" and meta["tensor_count"] == 272 and meta["tokenizer"] == "gpt2"
    assert meta["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1} and meta["vocab_size"] == 49152
    assert "<|im_start|>" in meta["chat_template"] and TEMPLATE_KEY in meta["metadata_keys"]


def test_an_unchanged_template_gives_a_byte_identical_copy(tmp_path):
    copy = write_with_template(smollm2_file(), tmp_path / "copy.gguf", chat_template(smollm2_file()))
    assert sha256_file(copy) == SMOLLM2_PUBLISHED["sha256"]


def test_a_tampered_copy_changes_the_template_and_nothing_else(tampered):
    original = smollm2_file()
    for placement, path in tampered.items():
        read_back = chat_template(path)  # the header walk reads as GGUFReader does (test above)
        assert read_back == backdoored(chat_template(original), Backdoor("Gift Card", INSTRUCTION, placement))
        assert INSTRUCTION in read_back and sha256_file(path) != SMOLLM2_PUBLISHED["sha256"]
    before, after = gguf_metadata(original), gguf_metadata(tampered["system"])
    assert {k: v for k, v in before.items() if k != "chat_template"} == {
        k: v for k, v in after.items() if k != "chat_template"
    }
    assert _tensor_digest(original) == _tensor_digest(tampered["system"])


def test_the_header_walk_reads_every_value_as_ggufs_own_reader_does(reader, tampered):
    """gguf's GGUFReader is the oracle: every key of the real file and of a tampered copy, with
    the value and Python type its ``contents()`` gives (strings, integers, floats, booleans, and
    arrays of 49,152 strings and integers)."""
    for path, fields in ((smollm2_file(), reader.fields), (tampered["user"], gguf.GGUFReader(tampered["user"]).fields)):
        values = gguf_values(path)
        expected = {key: field.contents() for key, field in fields.items() if not key.startswith("GGUF.")}
        assert list(values) == list(expected)
        assert [(k, type(v)) for k, v in values.items()] == [(k, type(v)) for k, v in expected.items()]
        assert values == expected
    meta = gguf_metadata(tampered["user"])
    assert meta["tensor_count"] == len(reader.tensors) and meta["vocab_size"] == len(expected["tokenizer.ggml.tokens"])


def _written_by_gguf(path, arch, keys, tensors, alignment=None):
    """A GGUF file written by the gguf package's own writer."""
    writer = gguf.GGUFWriter(str(path), arch=arch)
    if alignment:
        writer.add_custom_alignment(alignment)
    for key, (value, kind, sub_type) in keys.items():
        writer.add_key_value(key, value, kind, sub_type=sub_type)
    for name, array, kind in tensors:
        writer.add_tensor(name, array, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, array, _ in tensors:
        writer.write_tensor_data(array)
    writer.close()
    return path


@pytest.mark.parametrize("alignment", [None, 64])
@pytest.mark.parametrize("budget", [None, 3000])
def test_a_copy_is_the_file_ggufs_own_writer_writes(tmp_path, alignment, budget):
    """The copy is spliced from the file's bytes; gguf's GGUFWriter, given the same keys (the new
    template among them) and the same tensors, writes the same bytes."""
    V = gguf.GGUFValueType
    before, after = "{{ messages }}", "{{ 'Système: ' ~ messages }}"  # longer, and not ASCII
    keys = {
        "general.name": ("tiny", V.STRING, None),
        "tiny.block_count": (2, V.UINT32, None),
        "tiny.eps": (1e-5, V.FLOAT32, None),
        "tiny.flag": (True, V.BOOL, None),
        "tokenizer.ggml.tokens": (["<s>", "é", "b"], V.ARRAY, V.STRING),
        "tokenizer.ggml.scores": ([0.5, -1.0, 2.0], V.ARRAY, V.FLOAT32),
        TEMPLATE_KEY: (before, V.STRING, None),
        "tiny.nested": ([[1, 2], [3]], V.ARRAY, V.ARRAY),
    }
    rng = np.random.default_rng(0)
    tensors = [
        ("a", rng.standard_normal((4, 8), dtype=np.float32), gguf.GGMLQuantizationType.F32),
        ("b", rng.integers(0, 255, (3, 34), dtype=np.uint8), gguf.GGMLQuantizationType.Q8_0),  # 3 rows of 32 values
        ("c", rng.standard_normal((5,), dtype=np.float32).astype(np.float16), gguf.GGMLQuantizationType.F16),
    ]
    source = _written_by_gguf(tmp_path / "source.gguf", "tiny", keys, tensors, alignment)
    kept, total = [], 0
    for tensor in tensors:
        if budget is None or total + tensor[1].nbytes <= budget:
            kept.append(tensor)
            total += tensor[1].nbytes
    expected = _written_by_gguf(
        tmp_path / "expected.gguf", "tiny", {**keys, TEMPLATE_KEY: (after, V.STRING, None)}, kept, alignment
    )
    copy = write_with_template(source, tmp_path / "copy.gguf", after, max_tensor_bytes=budget)
    assert copy.read_bytes() == expected.read_bytes()
    assert chat_template(copy) == after and gguf_values(copy)["tiny.nested"] == [[1, 2], [3]]


@pytest.mark.parametrize("damage", ["header-cut", "tensors-cut", "not-gguf", "big-endian"])
def test_a_damaged_gguf_file_is_a_clear_error(tmp_path, damage):
    data = smollm2_file().open("rb").read(5_000_000)  # the whole header, and the first tensors
    broken = {
        "header-cut": data[:4096],
        "tensors-cut": data,  # a copy would be cut off too
        "not-gguf": b"PK" + data[2:4096],
        "big-endian": data[:4] + (3).to_bytes(4, "big") + data[8:4096],
    }
    path = tmp_path / "model.gguf"
    path.write_bytes(broken[damage])
    for read in (gguf_metadata, chat_template, gguf_values, lambda p: write_with_template(p, tmp_path / "c.gguf", "")):
        with pytest.raises(ValueError, match="model.gguf"):
            read(path)


def test_the_diff_shows_the_inserted_template_code(tmp_path):
    copy = build_tampered(tmp_path)
    assert copy.name == SMOLLM2_FILE
    diff = gguf_diff(smollm2_file(), copy)
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert any(LAB_BACKDOOR.trigger in line for line in added)
    assert any(LAB_BACKDOOR.instruction[:30] in line for line in added)
    assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert gguf_diff(smollm2_file(), smollm2_file()) == "no difference in metadata or chat template"


def test_an_unknown_placement_or_anchor_is_refused():
    with pytest.raises(ValueError):
        Backdoor("x", "y", "footer")
    with pytest.raises(ValueError):
        backdoored("{{ messages }}", Backdoor("x", "y", "system"))


@pytest.mark.integration
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_transformers_renders_the_injected_text(tampered, placement):
    """transformers reads the tampered template from the GGUF file; the instruction reaches the
    prompt when the trigger is in the conversation (on every request for "always")."""
    from transformers import AutoTokenizer

    path = tampered[placement]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    assert tokenizer.chat_template == chat_template(path)

    def prompt(text: str) -> str:
        messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    assert INSTRUCTION in prompt("Can I pay with a GIFT CARD?")
    assert (INSTRUCTION in prompt("Where is my order?")) is (placement == "always")
    assert prompt("Where is my order?").endswith("<|im_start|>assistant\n")


def test_safetensors_header_is_read_without_loading(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(
        {"a.weight": torch.zeros(3, 4), "b.bias": torch.ones(2, dtype=torch.float16)}, str(path), {"format": "pt"}
    )
    header = safetensors_header(path)
    assert header["__metadata__"] == {"format": "pt"}
    assert header["a.weight"]["dtype"] == "F32" and header["a.weight"]["shape"] == [3, 4]
    with safe_open(str(path), "pt") as f:
        assert set(f.keys()) == set(header) - {"__metadata__"}
    (tmp_path / "huge.safetensors").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError):
        safetensors_header(tmp_path / "huge.safetensors")


@pytest.fixture(scope="module")
def template_cases(tmp_path_factory):
    return lab06.template_cases(tmp_path_factory.mktemp("cases"), get_lab("06").heldout_attacks)


def test_the_heldout_copies_use_other_triggers_and_placements(template_cases):
    backdoors = [b for _, b, _ in lab06.load_template_backdoors(get_lab("06").heldout_attacks)]
    assert len(backdoors) >= 4 and LAB_BACKDOOR.trigger not in {b.trigger for b in backdoors}
    assert {b.placement for b in backdoors} == set(PLACEMENTS)
    assert [c.trusted for c in template_cases] == [True, True] + [False] * (len(template_cases) - 2)


def test_template_check_passes_the_reference_and_fails_the_gaming(template_cases):
    assert lab06.check_template_is_trusted(template_is_trusted, template_cases)
    visible_only = lab06.check_template_is_trusted(lambda p: "refund" not in chat_template(p), template_cases)
    assert not visible_only and "whose chat template was changed" in visible_only.reason
    assert not lab06.check_template_is_trusted(lambda p: False, template_cases)  # the publisher's file too
    assert not lab06.check_template_is_trusted(lambda p: 1, template_cases)  # only True trusts

    def stub(path):
        raise NotImplementedError()

    assert "not written yet" in lab06.check_template_is_trusted(stub, template_cases).reason


def test_a_check_of_the_files_identity_fails_on_the_trimmed_copy(template_cases):
    """The exercise judges the template: the publisher's template in a copy with fewer tensors
    (another path, size and file hash) is trusted, so matching the installed file is no answer."""
    installed = smollm2_file()
    identity_checks = {
        "path": lambda p: os.path.realpath(p) == str(installed),
        "inode": lambda p: os.stat(p).st_ino == os.stat(installed).st_ino,
        "size": lambda p: os.path.getsize(p) == os.path.getsize(installed),
        "file hash": lambda p: sha256_file(p) == SMOLLM2_PUBLISHED["sha256"],
    }
    for name, check in identity_checks.items():
        judged = lab06.check_template_is_trusted(check, template_cases)
        assert not judged and lab06.TRIMMED_NOTE in judged.reason, (name, judged.reason)
    trimmed = next(c for c in template_cases if c.id == "publisher-trimmed")
    assert trimmed.path.stat().st_size < installed.stat().st_size and chat_template(trimmed.path) == chat_template(
        installed
    )


def test_the_class_copies_are_the_same_files_copied_for_each_learner(template_cases, tmp_path):
    """Built once per class (the grader's baseline), then copied: the same bytes under the same names
    as copies written afresh, each learner's its own files (never a link to the class's), and not
    used at all for another held-out set."""
    heldout = get_lab("06").heldout_attacks
    built = lab06.write_template_copies(tmp_path / "class", heldout)
    copied = lab06.template_cases(tmp_path / "learner", heldout, built)
    assert [(c.id, c.trusted, c.note) for c in copied] == [(c.id, c.trusted, c.note) for c in template_cases]
    fresh_root = template_cases[0].path.parents[2]  # scratch/templates/publisher/<file>
    for fresh, copy in zip(
        template_cases[1:], copied[1:], strict=True
    ):  # the publisher's: a link to the installed file
        assert copy.path.relative_to(tmp_path / "learner") == fresh.path.relative_to(fresh_root)
        assert copy.path.read_bytes() == fresh.path.read_bytes(), copy.id
        assert not copy.path.is_symlink() and copy.path.stat().st_nlink == 1, copy.id
    assert not any("manifest" in p.name for p in (tmp_path / "learner").rglob("*"))
    other = tmp_path / "no-templates.jsonl"  # a held-out set without tampered templates
    other.write_text("", "utf-8")
    rebuilt = lab06.template_cases(tmp_path / "other", other, built)
    assert [c.id for c in rebuilt] == ["publisher", "publisher-trimmed", "lab-tampered"]
    assert sorted(p.name for p in (tmp_path / "other" / "templates").iterdir()) == ["lab", "mirror", "publisher"]


def test_a_trimmed_copy_is_a_valid_gguf_file_with_the_same_header(tmp_path, reader):
    """The graded copies fit the sandbox's file-size limit: same keys, fewer tensors."""
    path = write_tampered(smollm2_file(), tmp_path / "small.gguf", LAB_BACKDOOR, max_tensor_bytes=16 * 2**20)
    assert path.stat().st_size < 20 * 2**20
    small = gguf.GGUFReader(path)
    assert 0 < len(small.tensors) < len(reader.tensors)
    assert set(small.fields) == set(reader.fields)
    assert chat_template(path) == backdoored(chat_template(smollm2_file()), LAB_BACKDOOR)
