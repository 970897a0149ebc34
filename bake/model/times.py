"""UTC timestamps, written and read in one way: ``2026-12-07T01:02:03Z`` in the lock, tags and
logs, ``20261207T010203Z`` in names (run ids, AMI names), where a colon cannot go."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

OLDEST = datetime.min.replace(tzinfo=timezone.utc)  # sorts before any time: a resource with none
COMPACT = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_utc(at: datetime | None = None, timespec: str = "seconds") -> str:
    """``at`` (default: now) in ISO 8601 UTC with a ``Z``; ``timespec`` as ``datetime.isoformat``'s."""
    return (at or utc_now()).astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def compact_utc(at: datetime | None = None) -> str:
    """``at`` (default: now) as ``20261207T010203Z``."""
    return (at or utc_now()).astimezone(timezone.utc).strftime(COMPACT)


def parse_utc(value: Any) -> datetime | None:
    """An ISO 8601 string (``...Z``, with an offset, or ``compact_utc``'s basic form) or a
    datetime, as an aware datetime (naive means UTC); None when it is neither."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        found = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=timezone.utc)
