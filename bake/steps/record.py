"""Record the new AMI in the lock file. Only then is the bake a success: until this step, an
interrupt deregisters the AMI (either the lock names it, or it is gone)."""

from __future__ import annotations

from dataclasses import asdict

from bake.data_volume import DEVICE
from bake.model.lock import AmiRecord, ImageDigest, LockEntry, LockFile, PoolLock, now_iso
from bake.plan import PoolPlan
from bake.steps.base import BuildState


def entry_for(plan: PoolPlan, made: AmiRecord) -> LockEntry:
    """The lock entry of ``plan`` carried out: the plan's facts, and what ``made`` records of the
    AMI, each of its fields by the entry's field of that name."""
    facts = asdict(made)
    image_ids = facts.pop("image_ids")
    # A data-volume pool's cache is its snapshot, which ami_id names too (bake/steps/data_volume.py).
    cache = ({"cache": "data-volume", "cache_snapshot_id": made.ami_id, "data_device": DEVICE}
             if plan.pool.cache == "data-volume" else {})
    return LockEntry(
        **facts | {"ami_id": made.ami_id or "", "copies": facts["copies"] or None,
                   "base_amis": facts["base_amis"] or None} | cache,
        region=plan.region,
        fingerprint=plan.fingerprint,
        base_ami=plan.base_ami,
        images=[ImageDigest(ref=i.ref.original, digest=i.digest, image_id=image_ids.get(i.ref.original),
                            aliases=plan.aliases.get(i.ref.original)) for i in plan.images],
        built_at=now_iso(),
        runtime=plan.pool.runtime,
        compressed_bytes=plan.compressed_bytes,
        prewarm=plan.pool.prewarm,
    )


def record(lock: LockFile, pool: str, entry: LockEntry) -> None:
    def change(old: PoolLock) -> PoolLock:
        if old.current and old.current.ami_id == entry.ami_id:
            # The same AMI (a pool that only gained copies): the entry keeps its history and
            # time, and names its copies.
            copies = {**(old.current.copies or {}), **(entry.copies or {})} or None
            base_amis = {**(old.current.base_amis or {}), **(entry.base_amis or {})} or None
            return old.model_copy(update={"current": old.current.model_copy(update={"copies": copies,
                                                                                    "base_amis": base_amis})})
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
        record(self.lock, st.plan.pool.name, entry_for(st.plan, st.record))
        st.succeeded = True
        st.emit("step", f"recorded {st.record.ami_id} in {self.lock.path.name}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass
