"""amis.lock.json: atomic, locked writes; corrupt files are refused and left untouched."""

from __future__ import annotations

import json
import threading

import pytest

from bake.errors import LockFileError
from bake.model.lock import AmiUse, ImageDigest, LockData, LockEntry, LockFile, Pin, PoolLock


def entry(ami: str, fp: str = "sha256:x") -> LockEntry:
    return LockEntry(ami_id=ami, region="us-east-1", fingerprint=fp, base_ami="ami-base",
                     images=[ImageDigest(ref="python:3", digest="sha256:" + "a" * 64)], built_at="2026-01-01T00:00:00Z")


def test_promote_moves_current_to_history_newest_first(tmp_path):
    lock = LockFile(tmp_path / "amis.lock.json")
    for ami in ("ami-1", "ami-2", "ami-3"):
        lock.update("cpu", lambda old, a=ami: old.promoted(entry(a)))
    data = lock.read()
    assert data.pools["cpu"].current.ami_id == "ami-3"
    assert [e.ami_id for e in data.pools["cpu"].history] == ["ami-2", "ami-1"]
    raw = json.loads((tmp_path / "amis.lock.json").read_text())
    assert raw["version"] == 1 and raw["pools"]["cpu"]["current"]["images"][0]["ref"] == "python:3"


def test_ami_ids_names_every_ami_once_with_where_the_lock_names_it():
    lock = LockData(pools={
        "cpu": PoolLock(current=entry("ami-2"), history=[entry("ami-1"), entry("ami-0")],
                        pinned=Pin(ami_id="ami-2", reason="rollback", at="2026-01-02T00:00:00Z")),
        "gpu": PoolLock(current=entry("ami-9"), history=[entry("ami-1")]),
        "new": PoolLock(),
    })
    ids = lock.ami_ids()
    assert ids == {"ami-2": AmiUse("cpu", "current"), "ami-1": AmiUse("cpu", "history", 0),
                   "ami-0": AmiUse("cpu", "history", 1), "ami-9": AmiUse("gpu", "current")}
    assert [str(ids[a]) for a in ("ami-2", "ami-0")] == ["cpu current", "cpu history #2"]
    assert ("ami-2", AmiUse("cpu", "pinned")) in list(lock.ami_uses())
    assert ("ami-1", AmiUse("gpu", "history", 0)) in list(lock.ami_uses())


def test_concurrent_updates_of_different_pools_lose_nothing(tmp_path):
    lock = LockFile(tmp_path / "amis.lock.json")
    names = [f"p{i}" for i in range(16)]
    threads = [threading.Thread(target=lock.update, args=(n, lambda old, n=n: old.promoted(entry(f"ami-{n}")))) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(lock.read().pools) == sorted(names)


@pytest.mark.parametrize("text, why", [("{not json", "not JSON"), ('{"version": 7}', "version"),
                                       ('{"version": 1, "pools": {"cpu": {"current": {"ami_id": 3}}}}', "pools.cpu.current")])
def test_corrupt_lock_is_refused_and_not_overwritten(tmp_path, text, why):
    path = tmp_path / "amis.lock.json"
    path.write_text(text)
    lock = LockFile(path)
    with pytest.raises(LockFileError, match=why):
        lock.read()
    with pytest.raises(LockFileError):
        lock.update("cpu", lambda old: old.promoted(entry("ami-1")))
    assert path.read_text() == text


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "amis.lock.json"
    lock = LockFile(path)
    lock.update("cpu", lambda old: old.promoted(entry("ami-1")))
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        lock.update("cpu", lambda old: old.promoted(entry("ami-2")))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_lock_reads_empty(tmp_path):
    assert LockFile(tmp_path / "none.json").read().pools == {}
    assert PoolLock().current is None
