"""``amis.lock.json``: which AMI each pool runs, and what it ran before.

Committed to git; the rollout side reads it, ``bake build`` and ``bake rollback`` write it.
Every write re-reads the file under an exclusive file lock, changes one pool and replaces the
file atomically (temporary file, fsync, rename), so concurrent pools and processes never lose
each other's entries and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bake.errors import BakeError, LockFileError
from bake.model.times import iso_utc

LOCK_VERSION = 1
DEFAULT_LOCK_NAME = "amis.lock.json"  # beside the config
HISTORY_MAX = 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageDigest(_Model):
    ref: str
    digest: str
    # The CRI's image id (the config's digest), as the bake found it; absent for an AMI
    # recorded from its tags. The AMI holds the image as ref, NAME@digest, image_id, and each
    # alias (NAME:TAG, and NAME@digest on containerd).
    image_id: str | None = None
    aliases: list[str] | None = None


class LockEntry(_Model):
    ami_id: str
    region: str
    fingerprint: str
    base_ami: str
    images: list[ImageDigest]
    built_at: str
    runtime: str = "containerd"
    gpu_driver_version: str | None = None
    # The first-read facts (docs/first-start.md): the images' compressed size in their registries
    # (the builder's platform), what they occupy on the AMI's disk, and the AMI's snapshots (the
    # stack enables fast snapshot restore on them without asking AWS).
    compressed_bytes: int | None = None
    cache_bytes: int | None = None
    snapshot_ids: list[str] = Field(default_factory=list)
    snapshot_gib: int | None = None  # the sizes of the volumes they were taken of
    prewarm: bool | None = None  # the boot-time prewarm unit is baked in
    # The builder's runtime as verify saw it ("containerd 1.6.20"): whether the CRI pins images.
    runtime_version: str | None = None
    # The AMI's copies in other regions ([pools.NAME.distribute] regions): { REGION: AMI_ID }.
    # None (not written) for a pool that distributes nothing.
    copies: dict[str, str] | None = None
    # A cache = "data-volume" pool's entry (issue 24): the snapshot of the volume that holds the
    # runtime's root, and the device the node maps it at.
    cache: Literal["ami", "data-volume"] = "ami"
    cache_snapshot_id: str | None = None
    data_device: str | None = None
    # A data-volume pool's stock AMI in each region its snapshot is copied to ({ REGION: AMI_ID },
    # the region's own resolution of base_ami): what that region's nodes launch.
    base_amis: dict[str, str] | None = None
    # Set on an entry that `bake rollback` made current again: when and from which AMI.
    rolled_back_at: str | None = None
    rolled_back_from: str | None = None

    def amis(self) -> list[str]:
        """The AMI and its copies, in every region."""
        return [self.ami_id, *(self.copies or {}).values()]

    def ami_in(self, region: str) -> str | None:
        """This entry's AMI in ``region``: the original there, else its copy, else None."""
        return self.ami_id if region == self.region else (self.copies or {}).get(region)

    def base_ami_in(self, region: str) -> str | None:
        """The stock AMI a data-volume pool's nodes launch in ``region`` (its base AMI at home)."""
        return self.base_ami if region == self.region else (self.base_amis or {}).get(region)


@dataclass
class AmiRecord:
    """What a lock entry records of an AMI beside the plan's facts (bake.plan), each field named
    as the ``LockEntry`` field it becomes (``image_ids`` goes into the entry's images): a new fact
    is a field here and there, set by the step that finds it (bake.steps.record.entry_for passes
    it on). A bake's steps fill it in; a skip, reuse or copy starts from what the lock or AWS
    says of the AMI it keeps."""

    ami_id: str | None = None
    snapshot_ids: list[str] = field(default_factory=list)
    snapshot_gib: int | None = None  # the sizes of the volumes they were taken of
    cache_bytes: int | None = None  # what the images occupy on the builder's disk
    copies: dict[str, str] = field(default_factory=dict)  # region -> the AMI's copy there
    image_ids: dict[str, str] = field(default_factory=dict)  # image (as listed) -> its id (the pull)
    runtime_version: str | None = None  # the builder's runtime as verify saw it
    gpu_driver_version: str | None = None
    # A cache = "data-volume" pool's (issue 24): the data volume's snapshot and its device.
    cache_snapshot_id: str | None = None
    data_device: str | None = None
    base_amis: dict[str, str] = field(default_factory=dict)  # region -> the stock AMI its copy's nodes launch


class Pin(_Model):
    """A pool held on its current AMI (after a rollback): `build` leaves it alone."""

    ami_id: str
    reason: str
    at: str
    # The pool's fingerprint when pinned: when the config's images change, the pin lapses.
    fingerprint: str | None = None


class PoolLock(_Model):
    current: LockEntry | None = None
    history: list[LockEntry] = Field(default_factory=list)
    pinned: Pin | None = None

    def promoted(self, entry: LockEntry) -> PoolLock:
        """This pool with ``entry`` current and the old current first in history."""
        history = ([self.current] if self.current else []) + self.history
        return PoolLock(current=entry, history=history[:HISTORY_MAX], pinned=self.pinned)


class AmiUse(NamedTuple):
    """Where the lock names an AMI: ``cpu current``, ``cpu pinned``, ``cpu history #2``."""

    pool: str
    role: Literal["current", "pinned", "history"]
    index: int = 0  # in history: 0 is the newest

    def __str__(self) -> str:
        return f"{self.pool} history #{self.index + 1}" if self.role == "history" else f"{self.pool} {self.role}"


class LockData(_Model):
    version: int = LOCK_VERSION
    pools: dict[str, PoolLock] = Field(default_factory=dict)

    def pool(self, name: str) -> PoolLock:
        return self.pools.get(name) or PoolLock()

    def ami_uses(self) -> Iterator[tuple[str, AmiUse]]:
        """Every place the lock names an AMI (an entry's copies in other regions too): per pool,
        current, pin, then history newest first."""
        for name, rec in self.pools.items():
            if rec.current:
                yield from ((ami, AmiUse(name, "current")) for ami in rec.current.amis())
            if rec.pinned:
                yield rec.pinned.ami_id, AmiUse(name, "pinned")
                # A pin names the original; its entry (current, after a rollback) names the copies.
            for i, entry in enumerate(rec.history):
                yield from ((ami, AmiUse(name, "history", i)) for ami in entry.amis())

    def ami_ids(self) -> dict[str, AmiUse]:
        """Every AMI the lock names, with the first place that names it."""
        out: dict[str, AmiUse] = {}
        for ami, use in self.ami_uses():
            out.setdefault(ami, use)
        return out


def now_iso(at: datetime | None = None) -> str:
    """``at`` (default: now) in UTC to the second, as the lock and the tags write time."""
    return iso_utc(at)


class LockFile:
    """The lock file at ``path``; a sibling ``.NAME.lock`` serializes writers."""

    def __init__(self, path: str | Path, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = timeout
        self._mutex = FileLock(str(self.path.parent / f".{self.path.name}.lock"))

    def read(self) -> LockData:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LockData()
        except OSError as e:
            raise LockFileError(f"{self.path}: cannot read: {e.strerror}") from None
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LockFileError(
                f"{self.path}: corrupt lock file (not JSON: {e}); it was left as it is. "
                "Restore it from git (`git checkout -- FILE`) or delete it to rebuild from AMI tags."
            ) from None
        if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION:
            raise LockFileError(
                f"{self.path}: corrupt lock file (expected an object with \"version\": {LOCK_VERSION}); "
                "it was left as it is"
            )
        try:
            return LockData.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise LockFileError(f"{self.path}: corrupt lock file at {where}: {err['msg']}; it was left as it is") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with self._mutex.acquire(timeout=self.timeout):
                yield
        except Timeout:
            raise BakeError(
                f"{self.path}: another bake holds the lock file for more than {self.timeout:.0f}s"
            ) from None

    def update(self, pool: str, change: Callable[[PoolLock], PoolLock]) -> LockData:
        """Re-read, replace one pool's record with ``change(old)``, write atomically."""
        with self._locked():
            data = self.read()
            pools = dict(data.pools)
            pools[pool] = change(data.pool(pool))
            new = LockData(version=LOCK_VERSION, pools=dict(sorted(pools.items())))
            self._write(new)
            return new

    def _write(self, data: LockData) -> None:
        text = json.dumps(data.model_dump(mode="json", exclude_none=True), indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
