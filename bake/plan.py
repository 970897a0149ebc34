"""What planning decides for a pool: ``PoolPlan``, a frozen value.

The plan is made once, before anything is launched, and a build carries it unchanged: the
steps read their inputs from it (``BuildState.plan``) and fill in an ``AmiRecord``
(bake.model.lock) with what they create. A lock entry is the plan's facts plus that record
(``bake.steps.record.entry_for``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bake.decision import Action
from bake.disk import DiskPlan
from bake.first_start import FirstRead
from bake.gpu import DriverFloor
from bake.model.config import PoolConfig
from bake.model.images import ResolvedImage
from bake.model.lock import AmiRecord, PoolLock


@dataclass(frozen=True)
class PoolPlan:
    """One pool's inputs (pool, resolved base AMI and images) and the decision made on them."""

    pool: PoolConfig
    region: str
    base_ami: str
    images: tuple[ResolvedImage, ...]
    fingerprint: str
    action: Action
    reason: str
    existing: AmiRecord | None = None  # the AMI a skip, pin, reuse or copy keeps (None: a bake)
    gpu_floor: DriverFloor | None = None  # a GPU pool's bake: the drivers its validation image accepts
    aliases: Mapping[str, list[str]] = field(default_factory=dict)  # image (as listed) -> its other names
    notes: tuple[str, ...] = ()  # what the user should know, e.g. image GC
    disk: DiskPlan | None = None  # the builder's root volume, when root_volume_size is unset
    image_sizes: Mapping[str, int] = field(default_factory=dict)  # ref -> compressed bytes (its manifest's layers and config)
    warnings: tuple[str, ...] = ()
    first_read: FirstRead | None = None  # how a new node reads the cache (docs/first-start.md)
    base_image: Mapping[str, Any] | None = None  # the base AMI's DescribeImages entry (the launch reads it too)
    lock_record: PoolLock | None = None  # the pool's lock record the decision was made on
    # A data-volume pool's stock AMI in each [distribute] region (its base_ami resolved there).
    region_base_amis: Mapping[str, str] = field(default_factory=dict)

    @property
    def ami_id(self) -> str | None:
        return self.existing.ami_id if self.existing else None

    @property
    def root_volume_gib(self) -> int | None:
        """The builder's root volume: the pool's size, else the one sized from the images (None:
        the base AMI's)."""
        if self.pool.root_volume_size is not None:
            return self.pool.root_volume_size
        return self.disk.gib if self.disk and self.disk.volume == "root" else None

    @property
    def data_volume_gib(self) -> int | None:
        """A data-volume pool's cache volume, sized from the images (bake/data_volume.py)."""
        return self.disk.gib if self.disk and self.disk.volume == "data" else None

    @property
    def compressed_bytes(self) -> int | None:
        return sum(self.image_sizes.values()) if self.image_sizes else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool.name,
            "region": self.region,
            "action": self.action,
            "reason": self.reason,
            "base_ami": self.base_ami,
            "fingerprint": self.fingerprint,
            "ami_id": self.ami_id,
            "images": [{"ref": i.ref.original, "digest": i.digest, "compressed_bytes": self.image_sizes.get(i.ref.original),
                        **({"aliases": self.aliases[i.ref.original]} if i.ref.original in self.aliases else {})}
                       for i in self.images],
            "compressed_bytes": self.compressed_bytes,
            "cache_bytes": self.existing.cache_bytes if self.existing else None,
            "first_read": self.first_read.as_dict() if self.first_read else None,
            "notes": list(self.notes),
            "builder_disk": self.disk.as_dict() if self.disk else None,
            "warnings": list(self.warnings),
        }
