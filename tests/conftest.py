"""Shared fixtures for the unit tests."""

from __future__ import annotations

import pytest

from doubleedge.models import ReferenceModel
from doubleedge.target import SupportBot

FAKE_SECRET = "DE-FAKE-1234-ABCD"


@pytest.fixture
def secret() -> str:
    """A fixed, clearly fake staff code, so expected replies can be written out."""
    return FAKE_SECRET


@pytest.fixture
def bot(secret: str) -> SupportBot:
    """The unhardened support bot on the reference model."""
    return SupportBot(ReferenceModel(), secret=secret)
