"""Model backends behind one interface (see ``base.ChatModel``)."""

from doubleedge.models.base import ChatModel, Message, ModelError
from doubleedge.models.reference import ReferenceModel

__all__ = ["ChatModel", "Message", "ModelError", "ReferenceModel", "load_model"]


def load_model(spec: str = "reference") -> ChatModel:
    """Build a backend from a ``--model`` spec. Only the reference model ships today."""
    if spec == "reference":
        return ReferenceModel()
    raise ValueError(f"unknown model {spec!r}; available: reference")
