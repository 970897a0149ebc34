"""Fixtures for ``bake adopt``; the groups it adopts are made by legacy_groups.py, in the
sandbox's moto (the one the real bake uses)."""

from __future__ import annotations

import uuid

import pytest

# Older tests wrote `from conftest import ...`: keep those names here too.
from legacy_groups import PRE_EXISTING, USER_DATA, describe_group, make_legacy_group  # noqa: F401


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
