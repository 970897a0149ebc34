"""EBS fast snapshot restore's quota, counted at the moment a rebake's rollout applies.

AWS: "You can enable up to 5 snapshots for fast snapshot restore per Region" (Amazon EBS User Guide,
"Amazon EBS fast snapshot restore", read 2026-12-06; docs/aws-rules.md). A pool with
``[fast_snapshot_restore]`` holds one ``aws_ebs_fast_snapshot_restore`` per snapshot of its current
AMI and zone. A rebake puts a new AMI in the lock: the next apply creates restores for the new
snapshots and destroys those of the old ones, in one apply and in no order Terraform promises
(different resource addresses, no dependency between them). So the count to check is the old
snapshots and the new ones together. Ordering the change instead (destroy first) would need two
applies or a dependency from each new restore on the old ones' destruction, which Terraform cannot
express across addresses; and it would leave nodes without fast restores in between. ``plan``
therefore refuses (exit 2) a set that could exceed the quota at that moment, naming the pools.

Pure: the caller passes what the config, the lock and the plan say.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bake.plan import PoolPlan
    from bake.model.config import BakeConfig
    from bake.model.lock import LockData

QUOTA = 5
SOURCE = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ebs-fast-snapshot-restore.html"


@dataclass(frozen=True)
class FsrPool:
    name: str
    region: str
    snapshots: tuple[str, ...]  # the current AMI's, from the lock (none before a first bake)
    new_ami: bool  # the plan puts another AMI in the lock (bake or reuse)

    def new_snapshots(self) -> int:
        """The new AMI's snapshots, unknown before it exists: as many as the current one's (an
        AMI of the same pool maps the same devices), one for a first bake."""
        return max(len(self.snapshots), 1) if self.new_ami else 0


@dataclass(frozen=True)
class Peak:
    region: str
    count: int
    pools: tuple[str, ...]  # every pool with fast snapshot restore in the region
    rebaking: tuple[str, ...]  # those whose restores are replaced in this rollout


def peaks(pools: Iterable[FsrPool]) -> list[Peak]:
    """Per region, the snapshots with fast snapshot restore while a rollout of these plans applies."""
    by_region: dict[str, list[FsrPool]] = defaultdict(list)
    for p in pools:
        by_region[p.region].append(p)
    out = []
    for region, group in sorted(by_region.items()):
        held = {s for p in group for s in p.snapshots}
        out.append(Peak(region, len(held) + sum(p.new_snapshots() for p in group),
                        tuple(sorted(p.name for p in group)), tuple(sorted(p.name for p in group if p.new_ami))))
    return out


def refusal(pools: Iterable[FsrPool]) -> str | None:
    """Why the rollout would exceed the quota, or None."""
    over = [p for p in peaks(pools) if p.count > QUOTA]
    if not over:
        return None
    parts = []
    for p in over:
        rebake = f"; rebaking {', '.join(p.rebaking)} adds its new snapshots before the old ones' restores go" \
            if p.rebaking else ""
        parts.append(f"{p.region}: {p.count} snapshots with fast snapshot restore at the rollout's apply "
                     f"(pools {', '.join(p.pools)}{rebake})")
    return (f"fast snapshot restore quota: at most {QUOTA} snapshots per Region ({SOURCE}); "
            f"{'; '.join(parts)}. Rebake fewer of these pools at a time (--pool), or drop "
            f"[pools.NAME.fast_snapshot_restore] from some")


def fsr_pools(config: BakeConfig, lock: LockData, plans: Iterable[PoolPlan]) -> list[FsrPool]:
    """The pools with fast snapshot restore that the stack rolls out, and whether ``plans`` rebake them."""
    changing = {p.pool.name for p in plans if p.action in ("bake", "reuse")}
    out = []
    for name, pool in config.pools.items():
        rollout = pool.rollout
        if not rollout.configured or rollout.launch == "none" or rollout.fast_snapshot_restore is None:
            continue
        entry = lock.pool(name).current
        region = entry.region if entry else (config.region or "")
        out.append(FsrPool(name, region, tuple(entry.snapshot_ids) if entry else (), name in changing))
    return out
