"""Small helpers shared by prune and sweep: clients, region, durations, times, tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bake import aws
from bake.aws import paginate
from bake.errors import UsageError
from bake.model import paths
from bake.model.config import BakeConfig, load_config
from bake.model.lock import LockData, LockFile

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


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string (``...Z`` or with an offset) or a datetime, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def format_age(delta: timedelta) -> str:
    s = max(int(delta.total_seconds()), 0)
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def error_code(exc: BaseException) -> str:
    return aws.error_code(exc) or ""


def load_optional_config(path: str | None) -> BakeConfig | None:
    """The config at ``path`` (or $BAKE_CONFIG); with neither, ``bake.toml`` if it exists, else None."""
    if paths.config_named(path) or paths.config_path(path).is_file():
        return load_config(paths.config_path(path))
    return None


def lock_path(path: str | None, config: BakeConfig | None) -> Path:
    return paths.lock_path(config.path if config is not None else None, path)


def read_lock(path: Path) -> LockData:
    return LockFile(path).read()


def resolve_region(region: str | None, config: BakeConfig | None) -> str:
    """--region, else the config's region, else the AWS chain (AWS_REGION, profile...)."""
    if region:
        return region
    if config is not None and config.region:
        return config.region
    import boto3

    found = boto3.session.Session().region_name
    if not found:
        raise UsageError("no AWS region: pass --region, set region in bake.toml, or set AWS_REGION")
    return found


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
