"""How a new node first reads its cached images, in figures: the pool's strategy, what it costs
and what it buys. Pure: the figures come from the lock, the config and AWS's published numbers
(each with its source in docs/first-start.md). ``plan`` and ``review`` print them."""

from __future__ import annotations

MIB = 1024 * 1024
GIB = 1024 * MIB


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
