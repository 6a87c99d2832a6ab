"""Per-learner secrets: format, determinism, where the learner id comes from, and which
process can compute what (course key, learner key, grading secret)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from doubleedge.target.secrets import (
    PUBLIC_COURSE_KEY,
    course_key,
    derive_secret,
    grading_secret,
    learner_environment,
    learner_id,
    learner_key,
)

FORMAT = re.compile(r"^DE-FAKE-[0-9A-F]{4}-[0-9A-F]{4}$")
ENV = ("DOUBLEEDGE_LEARNER", "JUPYTERHUB_USER", "DOUBLEEDGE_COURSE_KEY", "DOUBLEEDGE_LEARNER_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("learner", ["alice", "bob", "local", "x", "ünïcødé-learner", "a" * 200])
def test_secret_format(learner):
    assert FORMAT.match(derive_secret(learner, key="k"))


def test_secret_is_deterministic():
    assert derive_secret("alice", key="k") == derive_secret("alice", key="k")


def test_secret_differs_between_learners():
    secrets = {derive_secret(name, key="k") for name in ("alice", "bob", "carol", "dave", "erin")}
    assert len(secrets) == 5


def test_secret_depends_on_the_key():
    assert derive_secret("alice", key="key-one") != derive_secret("alice", key="key-two")


def test_secret_is_an_hmac_under_the_learner_key():
    key = hmac.new(b"k", b"learner:alice", hashlib.sha256).hexdigest()
    assert learner_key("alice", key="k") == key
    digest = hmac.new(key.encode(), b"staff-code", hashlib.sha256).hexdigest()[:8].upper()
    assert derive_secret("alice", key="k") == f"DE-FAKE-{digest[:4]}-{digest[4:]}"


def test_purposes_give_different_codes():
    assert derive_secret("alice", key="k", purpose="capstone") != derive_secret("alice", key="k")


def test_each_grading_case_is_its_own_code():
    cases = {grading_secret("alice", key="k", case=f"c{n}") for n in range(5)}
    assert len(cases) == 5 and grading_secret("alice", key="k") not in cases
    assert grading_secret("alice", key="k", case="c1") == grading_secret("alice", key="k", case="c1")


def test_grading_secret_is_none_of_the_learners_codes():
    grading = grading_secret("alice", key="k")
    assert FORMAT.match(grading)
    assert grading not in {derive_secret("alice", key="k", purpose=p) for p in ("staff-code", "capstone")}
    assert grading != grading_secret("bob", key="k") and grading == grading_secret("alice", key="k")


def test_empty_learner_raises():
    with pytest.raises(ValueError, match="learner id must not be empty"):
        derive_secret("", key="k")


def test_default_key_is_the_public_one():
    assert course_key() == PUBLIC_COURSE_KEY
    assert derive_secret("alice") == derive_secret("alice", key=PUBLIC_COURSE_KEY)


def test_course_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_COURSE_KEY", "instructor-private")
    assert course_key() == "instructor-private"
    assert derive_secret("alice") == derive_secret("alice", key="instructor-private")
    assert derive_secret("alice") != derive_secret("alice", key=PUBLIC_COURSE_KEY)


def test_explicit_key_beats_the_environment(monkeypatch):
    monkeypatch.setenv("DOUBLEEDGE_COURSE_KEY", "instructor-private")
    assert derive_secret("alice", key="explicit") != derive_secret("alice")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "local"),
        ({"JUPYTERHUB_USER": "hubuser"}, "hubuser"),
        ({"DOUBLEEDGE_LEARNER": "explicit"}, "explicit"),
        ({"DOUBLEEDGE_LEARNER": "explicit", "JUPYTERHUB_USER": "hubuser"}, "explicit"),
        ({"DOUBLEEDGE_LEARNER": "", "JUPYTERHUB_USER": "hubuser"}, "hubuser"),  # empty counts as unset
        ({"DOUBLEEDGE_LEARNER": "", "JUPYTERHUB_USER": ""}, "local"),
    ],
)
def test_learner_id_precedence(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert learner_id() == expected


def test_derive_secret_without_a_learner_uses_learner_id(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "hubuser")
    assert derive_secret(key="k") == derive_secret("hubuser", key="k")



def _learner_server(monkeypatch, learner: str, key: str) -> None:
    """The environment the hub gives a learner's server (and the grader the learner's code)."""
    monkeypatch.setenv("DOUBLEEDGE_COURSE_KEY", key)
    env = learner_environment(learner)
    monkeypatch.delenv("DOUBLEEDGE_COURSE_KEY")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_a_learner_server_computes_its_own_codes_as_the_grader_does(monkeypatch):
    _learner_server(monkeypatch, "alice", "instructor-private")
    assert derive_secret() == derive_secret("alice") == derive_secret("alice", key="instructor-private")
    assert derive_secret(purpose="capstone") == derive_secret("alice", key="instructor-private", purpose="capstone")


def test_a_learner_server_cannot_compute_another_learners_codes(monkeypatch):
    _learner_server(monkeypatch, "alice", "instructor-private")
    with pytest.raises(PermissionError, match="holds only alice's learner key, not bob's"):
        derive_secret("bob")


def test_a_learner_server_has_no_course_key_and_no_grading_secret(monkeypatch):
    _learner_server(monkeypatch, "alice", "instructor-private")
    with pytest.raises(PermissionError, match="not the course key"):
        course_key()
    with pytest.raises(PermissionError):
        grading_secret("alice")
    with pytest.raises(PermissionError):
        learner_key("bob")


def test_the_course_key_wins_over_a_learner_key(monkeypatch):
    _learner_server(monkeypatch, "alice", "instructor-private")
    monkeypatch.setenv("DOUBLEEDGE_COURSE_KEY", "instructor-private")  # the grading machine
    assert derive_secret("bob") == derive_secret("bob", key="instructor-private")
