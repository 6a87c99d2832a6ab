"""The community-model builder: every case is built the same way every time, payloads stay harmless."""

import json
import pickle

import pytest
import torch

from doubleedge.grading.labs import get_lab
from doubleedge.supplychain import (
    COMMUNITY_VARIANTS,
    MARKER_TEXT,
    PAYLOADS,
    CaseSpec,
    build_case,
    build_community_model,
    fingerprint,
    load_specs,
    sha256_file,
    weights,
)
from doubleedge.supplychain.build import payload_for


def test_weights_are_seeded():
    assert fingerprint(weights(3)) == fingerprint(weights(3))
    assert fingerprint(weights(3)) != fingerprint(weights(4))


def test_fingerprint_rejects_what_is_not_a_state_dict():
    for value in (None, {}, [torch.zeros(1)], {"a": [1.0]}, {1: torch.zeros(1)}):
        with pytest.raises(TypeError):
            fingerprint(value)


def test_fingerprint_sees_dtype_and_values():
    a = {"w": torch.zeros(2)}
    assert fingerprint(a) != fingerprint({"w": torch.zeros(2, dtype=torch.float16)})
    assert fingerprint(a) != fingerprint({"w": torch.tensor([0.0, 1e-30])})


@pytest.mark.parametrize("spec", list(COMMUNITY_VARIANTS.values()), ids=lambda s: s.id)
def test_community_variants_build_the_same_bytes_twice(spec, tmp_path):
    one = build_case(spec, tmp_path)
    first = one.path.read_bytes() if one.path.is_file() else {p.name: p.read_bytes() for p in one.path.iterdir()}
    two = build_case(spec, tmp_path)
    again = two.path.read_bytes() if two.path.is_file() else {p.name: p.read_bytes() for p in two.path.iterdir()}
    assert one.sha256 == two.sha256 and first == again
    assert not one.marker.exists()


def test_community_model_publishes_its_hashes(tmp_path):
    hub = build_community_model(tmp_path)
    published = json.loads((tmp_path / "published_hashes.json").read_text())
    assert set(published) == {"pickle", "safetensors", "remote-code", "tampered"}
    assert sha256_file(hub.folder("safetensors") / "model.safetensors") == published["safetensors"]["sha256"]
    assert sha256_file(hub.folder("tampered") / "model.safetensors") != published["tampered"]["sha256"]
    assert "auto_map" in json.loads((hub.folder("remote-code") / "config.json").read_text())


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_every_payload_only_creates_its_marker(name, tmp_path):
    """Unpickling each payload (on purpose, here) creates the marker file and nothing else."""
    marker = tmp_path / "marker.txt"
    before = set(tmp_path.iterdir())
    result = pickle.loads(pickle.dumps(payload_for(name, marker)))
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()
    assert set(tmp_path.iterdir()) - before == {marker}


def test_nested_payload_runs_only_when_loaded(tmp_path):
    marker = tmp_path / "m.txt"
    data = pickle.dumps(payload_for("exec", marker, nested=True))
    assert not marker.exists()
    pickle.loads(data)
    assert marker.read_text() == MARKER_TEXT


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError):
        CaseSpec.from_dict({"id": "x", "expect": "load", "format": "torch-zip", "payload": "exec"})
    with pytest.raises(ValueError):
        CaseSpec.from_dict({"id": "x", "expect": "refuse", "format": "safetensors", "payload": "exec"})
    with pytest.raises(ValueError):
        CaseSpec.from_dict({"id": "x", "expect": "refuse", "payload": "rm-rf"})
    with pytest.raises(ValueError):
        CaseSpec.from_dict({"id": "x", "expect": "refuse", "script": "import os"})


def test_heldout_set_is_data_and_covers_every_kind():
    specs = load_specs(get_lab("06").heldout_attacks)
    assert len(specs) >= 20 and len({s.id for s in specs}) == len(specs)
    assert {s.expect for s in specs} == {"refuse", "load", "either"}
    assert {s.payload for s in specs if s.payload} >= set(PAYLOADS)
    assert {s.protocol for s in specs} >= {0, 1, 2, 3, 4, 5}
    assert any(s.nested for s in specs) and any(s.tamper for s in specs) and any(s.remote_code for s in specs)

    def trick(s):
        return (s.format, s.payload, s.nested, s.name, s.layout, s.protocol)

    visible = {trick(s) for s in COMMUNITY_VARIANTS.values()}
    assert all(trick(s) not in visible for s in specs if s.payload), "held-out tricks must be new"
