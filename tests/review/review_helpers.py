"""Helpers for the review tests: write lock files."""

from __future__ import annotations

from pathlib import Path

from bake.model.lock import ImageDigest, LockEntry, LockFile, Pin, PoolLock

def digest(ch: str) -> str:
    return "sha256:" + ch * 64


def entry(ami: str, base: str, images: list[tuple[str, str]]) -> LockEntry:
    return LockEntry(ami_id=ami, region="us-east-1", fingerprint="f" * 16, base_ami=base,
                     images=[ImageDigest(ref=r, digest=d) for r, d in images], built_at="2025-06-01T00:00:00Z")


def write_lock(path: Path, pools: dict[str, LockEntry], pinned: dict[str, Pin] | None = None) -> Path:
    lock = LockFile(path)
    for name, e in pools.items():
        pin = (pinned or {}).get(name)
        lock.update(name, lambda p, e=e, pin=pin: PoolLock(current=e, history=p.history, pinned=pin))
    return path
