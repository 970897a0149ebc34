"""Small helpers shared by prune and sweep: clients, regions, durations, tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from bake import aws
from bake.aws import paginate
from bake.errors import UsageError
from bake.model.config import BakeConfig

# Instance states in which an instance still exists and holds its AMI, key pair and group.
LIVE_INSTANCE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``1d``, ``30s``, ``1w`` as a timedelta."""
    m = _DURATION.match(text or "")
    if not m:
        raise UsageError(f"{text!r} is not a duration like 90m, 2h or 1d")
    return timedelta(**{_UNITS[m[2].lower()]: int(m[1])})


def format_age(delta: timedelta) -> str:
    s = max(int(delta.total_seconds()), 0)
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def error_code(exc: BaseException) -> str:
    return aws.error_code(exc) or ""


def regions(region: str, config: BakeConfig | None, explicit: bool = False) -> list[str]:
    """Where prune and sweep look: ``region``, then every region a pool's [distribute] names
    (its copies live there). An explicit --region is that region only."""
    if explicit or config is None:
        return [region]
    copies = {r for pool in config.pools.values() for r in pool.distribute.regions}
    return [region, *sorted(copies - {region})]


def clients(region: str, *services: str) -> list[Any]:
    sess = aws.session(region)
    return [aws.client(sess, s, region) for s in services]


def instances(ec2: Any, filters: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for reservation in paginate(ec2, "describe_instances", "Reservations", Filters=filters):
        yield from reservation.get("Instances", [])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (stable in logs and CI, unlike a live display)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
