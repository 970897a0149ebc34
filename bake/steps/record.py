"""Record the new AMI in the lock file. Only then is the bake a success: until this step, an
interrupt deregisters the AMI (either the lock names it, or it is gone)."""

from __future__ import annotations

from typing import Protocol

from bake.data_volume import DEVICE
from bake.model.config import PoolConfig
from bake.model.images import ResolvedImage
from bake.model.lock import ImageDigest, LockEntry, LockFile, PoolLock, now_iso
from bake.steps.base import BuildState


class Built(Protocol):
    """What a lock entry is made of: a finished bake's state, or a plan that found its AMI."""

    pool: PoolConfig
    ami_id: str | None
    region: str
    fingerprint: str
    base_ami: str
    images: list[ResolvedImage]
    gpu_driver_version: str | None
    compressed_bytes: int | None
    cache_bytes: int | None
    snapshot_ids: list[str]
    snapshot_gib: int | None
    aliases: dict[str, list[str]]
    image_ids: dict[str, str]
    runtime_version: str | None
    copies: dict[str, str]


def entry_for(built: Built) -> LockEntry:
    return LockEntry(
        ami_id=built.ami_id or "",
        region=built.region,
        fingerprint=built.fingerprint,
        base_ami=built.base_ami,
        images=[ImageDigest(ref=i.ref.original, digest=i.digest, image_id=built.image_ids.get(i.ref.original),
                            aliases=built.aliases.get(i.ref.original)) for i in built.images],
        built_at=now_iso(),
        runtime=built.pool.runtime,
        gpu_driver_version=built.gpu_driver_version,
        compressed_bytes=built.compressed_bytes,
        cache_bytes=built.cache_bytes,
        snapshot_ids=list(built.snapshot_ids),
        snapshot_gib=built.snapshot_gib,
        prewarm=built.pool.prewarm,
        runtime_version=built.runtime_version,
        copies=dict(built.copies) or None,
        # A data-volume pool's cache is its snapshot, which ami_id names too (bake/steps/data_volume.py).
        **({"cache": "data-volume", "cache_snapshot_id": built.ami_id, "data_device": DEVICE}
           if built.pool.cache == "data-volume" else {}),
    )


def record(lock: LockFile, pool: str, entry: LockEntry) -> None:
    def change(old: PoolLock) -> PoolLock:
        if old.current and old.current.ami_id == entry.ami_id:
            # The same AMI (a pool that only gained copies): the entry keeps its history and
            # time, and names its copies.
            copies = {**(old.current.copies or {}), **(entry.copies or {})} or None
            return old.model_copy(update={"current": old.current.model_copy(update={"copies": copies})})
        promoted = old.promoted(entry)
        # A pin lapses when the pool is built anew (its images changed since the rollback).
        return promoted.model_copy(update={"pinned": None})

    lock.update(pool, change)


class StepRecordLock:
    name = "lock"
    title = "recording the AMI in the lock file"

    def __init__(self, lock: LockFile):
        self.lock = lock

    def run(self, st: BuildState) -> None:
        record(self.lock, st.pool.name, entry_for(st))
        st.succeeded = True
        st.emit("step", f"recorded {st.ami_id} in {self.lock.path.name}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass
