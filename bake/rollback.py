"""``bake rollback``: make an earlier AMI of a pool current again, and pin the pool there.

Only the lock file changes; the rollout is the next ``cdktf diff`` / ``terraform plan``, which
shows the AMI going back as an ordinary reviewed diff. The pin makes ``bake build`` leave the pool
alone while its images are those that were rolled back from (same fingerprint); a changed image
set lapses the pin, and ``--unpin`` releases it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bake.errors import UsageError
from bake.model.lock import HISTORY_MAX, LockEntry, LockFile, Pin, PoolLock, now_iso
from bake.model.times import parse_utc

PIN_REASON = "rollback"


@dataclass(frozen=True)
class RollbackResult:
    pool: str
    from_ami: str
    to_ami: str
    pin: Pin


def _when(entry: LockEntry) -> datetime | str:
    return parse_utc(entry.built_at) or entry.built_at


def _history_list(pool: PoolLock) -> str:
    return ", ".join(f"{e.ami_id} (built {e.built_at})" for e in pool.history) or "(none)"


def _target_index(name: str, lock_path: Path, pool: PoolLock, to: str | None) -> int:
    current = pool.current
    assert current is not None
    if to is not None:
        if to == current.ami_id:
            raise UsageError(f"pool {name!r}: {to} is already current; nothing to roll back")
        for i, e in enumerate(pool.history):
            if e.ami_id == to:
                return i
        raise UsageError(
            f"pool {name!r}: {to} is not in the pool's history in {lock_path}; "
            f"its history AMIs: {_history_list(pool)}"
        )
    # The newest entry built before the current one: after a rollback, rolling back again goes
    # further back instead of returning to the AMI just rolled back from.
    try:
        older = [i for i, e in enumerate(pool.history) if _when(e) < _when(current)]  # type: ignore[operator]
    except TypeError:  # unparseable timestamps: plain history order
        older = list(range(len(pool.history)))
    if not older:
        raise UsageError(
            f"pool {name!r}: no AMI older than the current {current.ami_id} in {lock_path}'s history; "
            f"pick one with --to AMI_ID; history AMIs: {_history_list(pool)}"
        )
    return older[0]


def rollback(lock: LockFile, name: str, to: str | None = None,
             now: Callable[[], str] = now_iso) -> RollbackResult:
    """Make the previous (or the named) history entry current, record it, pin the pool."""
    result: list[RollbackResult] = []

    def change(pool: PoolLock) -> PoolLock:
        if pool.current is None:
            raise UsageError(
                f"pool {name!r} has no AMI in {lock.path}: nothing to roll back "
                f"(bake one: python -m bake build --pool {name})"
            )
        if not pool.history:
            raise UsageError(
                f"pool {name!r} has no history in {lock.path}: {pool.current.ami_id} is the only AMI "
                "it ever had; nothing to roll back to"
            )
        i = _target_index(name, lock.path, pool, to)
        at = now()
        old = pool.current
        target = pool.history[i].model_copy(update={"rolled_back_at": at, "rolled_back_from": old.ami_id})
        history = [old, *pool.history[:i], *pool.history[i + 1:]]
        pin = Pin(ami_id=target.ami_id, reason=PIN_REASON, at=at, fingerprint=old.fingerprint)
        result.append(RollbackResult(pool=name, from_ami=old.ami_id, to_ami=target.ami_id, pin=pin))
        return PoolLock(current=target, history=history[:HISTORY_MAX], pinned=pin)

    lock.update(name, change)
    return result[0]


def unpin(lock: LockFile, name: str) -> Pin | None:
    """Clear the pool's pin; return the pin that was there (None: it was not pinned, nothing written)."""
    pool = lock.read().pools.get(name)
    if pool is None:
        raise UsageError(f"pool {name!r} has no record in {lock.path}")
    if pool.pinned is None:
        return None
    was: list[Pin | None] = []

    def change(p: PoolLock) -> PoolLock:
        was.append(p.pinned)
        return p.model_copy(update={"pinned": None})

    lock.update(name, change)
    return was[0]
