"""The suite's two parts (``--part``, tests/conftest.py): scripts/dev.sh runs them at once."""

from __future__ import annotations

from typing import Any


def split(items: list[Any], part: str) -> tuple[list[Any], list[Any]]:
    """(kept, deselected): a test is in the sandbox part when its fixture closure holds `sandbox`."""
    if part == "all":
        return list(items), []
    kept, dropped = [], []
    for item in items:
        uses = "sandbox" in getattr(item, "fixturenames", ())
        (kept if uses == (part == "sandbox") else dropped).append(item)
    return kept, dropped
