"""Is the lock current? What ``python -m bake plan --check`` reports.

The decision per pool (bake, reuse, skip, pinned) is the planner's (``bake.build``); this module
does not make it again. It explains a pool that would change by comparing what the planner
resolved with the pool's current lock entry: which image's tag moved (old and new digest), which
base AMI replaced which, or that the AMI already exists and only its lock entry was lost.

On main the pipeline applies only what a pull request reviewed, so a pool that would bake or
reuse means the lock is stale and a new pull request is needed (exit 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bake import tags
from bake.plan import PoolPlan
from bake.model.lock import ImageDigest, LockData, PoolLock

CURRENT_ACTIONS = ("skip", "pinned")


@dataclass(frozen=True)
class PoolCheck:
    plan: PoolPlan
    changes: tuple[str, ...]  # empty when current

    @property
    def current(self) -> bool:
        return self.plan.action in CURRENT_ACTIONS


def explain(plan: PoolPlan, record: PoolLock) -> tuple[str, ...]:
    """Why ``plan`` is not current, one line per change; () for a skip or a pin."""
    if plan.action in CURRENT_ACTIONS:
        return ()
    cur = record.current
    found = (f"{plan.ami_id} already has this fingerprint (its {tags.KEY_FINGERPRINT} tag): "
             "`python -m bake build` records it, launching nothing")
    if cur is None:
        lost = "no lock entry for this pool"
        return (f"{lost}; {found}",) if plan.action == "reuse" else (f"{lost}: a new pool",)
    out: list[str] = []
    if cur.base_ami != plan.base_ami:
        out.append(f"base AMI {cur.base_ami} -> {plan.base_ami} (from {plan.pool.base_ami})")
    old = {i.ref: i.digest for i in cur.images}
    new = {i.ref.original: i.digest for i in plan.images}
    out += [f"image {ref}: tag moved, {old[ref]} -> {new[ref]}" for ref in sorted(old.keys() & new.keys())
            if old[ref] != new[ref]]
    out += [f"image {ref}: added ({new[ref]})" for ref in sorted(new.keys() - old.keys())]
    out += [f"image {ref}: removed" for ref in sorted(old.keys() - new.keys())]
    out += _alias_changes(cur.images, plan, new.keys() & old.keys())
    if cur.runtime != plan.pool.runtime:
        out.append(f"runtime {cur.runtime} -> {plan.pool.runtime}")
    if cur.region != plan.region:
        out.append(f"region {cur.region} -> {plan.region}")
    if cur.prewarm is not None and cur.prewarm != plan.pool.prewarm:
        out.append(f"prewarm {str(cur.prewarm).lower()} -> {str(plan.pool.prewarm).lower()}")
    if not out and cur.fingerprint != plan.fingerprint:
        out.append("same base AMI, digests and aliases: the recipe version, the GPU settings or prewarm changed")
    if plan.action == "reuse":
        out.append(found)
    return tuple(out) or (plan.reason,)  # same fingerprint: the lock's AMI is gone


def _alias_changes(recorded: list[ImageDigest], plan: PoolPlan, kept: Iterable[str]) -> list[str]:
    """Aliases are in the fingerprint: an image kept with other aliases rebakes."""
    old = {i.ref: set(i.aliases or ()) for i in recorded}
    out = []
    for ref in sorted(kept):
        now = set(plan.aliases.get(ref, ()))
        added, removed = sorted(now - old[ref]), sorted(old[ref] - now)
        if added or removed:
            parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
            out.append(f"image {ref}: aliases {'; '.join(parts)}")
    return out


def check(plans: Iterable[PoolPlan], lock: LockData) -> list[PoolCheck]:
    return [PoolCheck(p, explain(p, lock.pool(p.pool.name))) for p in plans]


def summary(checks: list[PoolCheck]) -> str:
    stale = [c for c in checks if not c.current]
    if not stale:
        return "check: every pool's lock entry is current (skip or pinned)"
    names = ", ".join(f"{c.plan.pool.name} ({c.plan.action})" for c in stale)
    return (f"check: {len(stale)} pool(s) not current: {names}. amis.lock.json does not match what "
            "a build would record: bake on a new pull request (`python -m bake build`, commit "
            "amis.lock.json) so the change is reviewed before it is applied")
