"""How a new node first reads its cached images, in figures: the pool's strategy, what it buys
and what it costs. Pure: the inputs are the lock entry (cache_bytes, the AMI's snapshots and
their size), the pool's rollout settings and AWS's published figures below, each with its page
in docs/first-start.md (read 2026-11-30). ``plan`` and ``review`` print them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bake.model.config import PoolConfig

MIB = 1024 * 1024
GIB = 1024 * MIB

# EBS user guide, "Amazon EBS fast snapshot restore volume creation credits": per snapshot and
# zone, bucket size = MAX(1, MIN(10, 1024 / snapshot_size_gib)) credits, refilled at
# MIN(10, 1024 / snapshot_size_gib) credits an hour; one credit per volume created.
FSR_CREDIT_NUMERATOR_GIB = 1024
FSR_CREDIT_MAX = 10
# "How AWS Pricing Works" (whitepaper), Amazon EBS: one FSR DSU-hour is $0.75 per Availability
# Zone in us-east-1, billed per minute with a one-hour minimum. Other regions differ.
FSR_DSU_HOUR_USD = 0.75
HOURS_PER_MONTH = 730  # AWS's pricing examples use 730 hours a month


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@dataclass(frozen=True)
class FirstRead:
    """A pool's first-read settings (rollout side) and facts (from the lock)."""

    pool: str
    rate_mib_s: int | None  # launch_template.volume_initialization_rate
    fsr_zones: tuple[str, ...]  # fast_snapshot_restore.availability_zones
    prewarm: bool
    cache_bytes: int | None = None
    snapshot_gib: int | None = None  # the AMI's snapshot volumes, GiB (an upper bound of their data)
    snapshots: int = 0

    @property
    def strategies(self) -> list[str]:
        out = []
        if self.fsr_zones:
            out.append("fast snapshot restore")
        if self.rate_mib_s:
            out.append(f"provisioned initialization rate {self.rate_mib_s} MiB/s")
        if self.prewarm:
            out.append("boot prewarm")
        return out

    @property
    def lazy(self) -> bool:
        """No AWS-side strategy: a new node's volume fetches each block from S3 on first read."""
        return not self.fsr_zones and not self.rate_mib_s

    def seconds_to_initialize(self, size_bytes: int | None) -> float | None:
        if not self.rate_mib_s or size_bytes is None:
            return None
        return size_bytes / (self.rate_mib_s * MIB)

    @property
    def credit_bucket(self) -> float | None:
        """Volumes per snapshot and zone that get fast snapshot restore's full benefit at once."""
        if not self.fsr_zones or not self.snapshot_gib:
            return None
        return max(1.0, min(FSR_CREDIT_MAX, FSR_CREDIT_NUMERATOR_GIB / self.snapshot_gib))

    @property
    def credits_per_hour(self) -> float | None:
        if not self.fsr_zones or not self.snapshot_gib:
            return None
        return min(FSR_CREDIT_MAX, FSR_CREDIT_NUMERATOR_GIB / self.snapshot_gib)

    @property
    def fsr_monthly_usd(self) -> float | None:
        if not self.fsr_zones:
            return None
        return FSR_DSU_HOUR_USD * HOURS_PER_MONTH * len(self.fsr_zones) * max(1, self.snapshots)

    def as_dict(self) -> dict[str, object]:
        return {
            "strategies": self.strategies, "lazy": self.lazy, "cache_bytes": self.cache_bytes,
            "volume_initialization_rate": self.rate_mib_s,
            "seconds_to_initialize_cache": self.seconds_to_initialize(self.cache_bytes),
            "fast_snapshot_restore_zones": list(self.fsr_zones), "snapshots": self.snapshots,
            "snapshot_gib": self.snapshot_gib, "credit_bucket": self.credit_bucket,
            "credits_per_hour": self.credits_per_hour, "fsr_monthly_usd": self.fsr_monthly_usd,
        }

    def lines(self) -> list[str]:
        """What plan and review print for the pool, one fact a line."""
        out = [f"first read: {', '.join(self.strategies) or 'none'}"]
        if self.lazy:
            out.append("warning: no volume_initialization_rate and no fast_snapshot_restore: new nodes read the "
                       "cache lazily from S3 (each block fetched on its first read)"
                       + ("; the boot prewarm reads it in the background" if self.prewarm else ""))
        if self.rate_mib_s and self.fsr_zones:
            out.append("warning: both volume_initialization_rate and fast_snapshot_restore: AWS initializes the "
                       "volume at the rate instead of fast snapshot restore, whose cost then buys nothing")
        out.append(f"cache on disk: {human_bytes(self.cache_bytes)}"
                   + (f"; AMI snapshot volumes {self.snapshot_gib} GiB" if self.snapshot_gib else ""))
        if self.rate_mib_s:
            cache_s = self.seconds_to_initialize(self.cache_bytes)
            whole_s = self.seconds_to_initialize(self.snapshot_gib * GIB if self.snapshot_gib else None)
            out.append(f"at {self.rate_mib_s} MiB/s: the cache's size takes "
                       f"{human_seconds(cache_s) if cache_s is not None else 'unknown'}, the whole volume at most "
                       f"{human_seconds(whole_s) if whole_s is not None else 'unknown'}; billed per volume created "
                       "(price: see docs/first-start.md)")
        if self.fsr_zones:
            bucket, per_hour = self.credit_bucket, self.credits_per_hour
            out.append(f"fast snapshot restore in {', '.join(self.fsr_zones)} on {self.snapshots or '?'} snapshot(s): "
                       + (f"credit bucket {bucket:.1f} volume(s), refilled {per_hour:.1f}/hour, per snapshot and zone"
                          if bucket is not None else "credit bucket unknown (the lock has no snapshot size)"))
            out.append(f"estimated cost: ${self.fsr_monthly_usd:,.0f}/month for fast snapshot restore "
                       f"(${FSR_DSU_HOUR_USD}/hour per snapshot and zone, us-east-1's price, {HOURS_PER_MONTH} h)")
        return out


def rollout_first_read(pool: PoolConfig) -> tuple[int | None, tuple[str, ...]]:
    """The pool's rate and zones (validated with the rest of bake.toml)."""
    fsr = pool.rollout.fast_snapshot_restore
    return pool.rollout.launch_template.volume_initialization_rate, tuple(fsr.availability_zones) if fsr else ()


def first_read(pool: PoolConfig, entry: object | None) -> FirstRead:
    rate, zones = rollout_first_read(pool)
    return FirstRead(
        pool=pool.name, rate_mib_s=rate, fsr_zones=zones, prewarm=pool.prewarm,
        cache_bytes=getattr(entry, "cache_bytes", None), snapshot_gib=getattr(entry, "snapshot_gib", None),
        snapshots=len(getattr(entry, "snapshot_ids", []) or []),
    )

