"""The model interface: Message validation, ChatModel's contract, load_model."""

from __future__ import annotations

import dataclasses

import pytest

from doubleedge.models import ChatModel, Message, ModelError, ReferenceModel, load_model


@pytest.mark.parametrize("role", ["system", "user", "assistant"])
def test_message_accepts_chat_roles(role):
    assert Message(role, "hi") == Message(role, "hi")


@pytest.mark.parametrize("role", ["tool", "User", "", "developer"])
def test_message_rejects_other_roles(role):
    with pytest.raises(ValueError, match="role must be one of"):
        Message(role, "hi")


@pytest.mark.parametrize("content", [None, 42, b"bytes", ["hi"]])
def test_message_rejects_non_string_content(content):
    with pytest.raises(TypeError, match="content must be a string"):
        Message("user", content)


def test_message_accepts_empty_content():
    assert Message("user", "").content == ""


def test_message_is_immutable():
    message = Message("user", "hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.content = "changed"  # type: ignore[misc]


def test_chat_model_cannot_be_instantiated_without_generate():
    class Incomplete(ChatModel):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


def test_chat_model_subclass_with_generate_works():
    class Echo(ChatModel):
        name = "echo"

        def generate(self, messages, *, max_new_tokens=256):
            return messages[-1].content

    assert Echo().generate([Message("user", "ping")]) == "ping"


def test_model_error_is_a_runtime_error():
    assert issubclass(ModelError, RuntimeError)


def test_load_model_reference():
    model = load_model("reference")
    assert isinstance(model, ReferenceModel)
    assert model.name == "reference"


def test_load_model_default_is_reference():
    assert isinstance(load_model(), ReferenceModel)


def test_load_model_rejects_an_unknown_spec():
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        load_model("gpt-9")
