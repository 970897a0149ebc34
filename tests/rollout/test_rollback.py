"""``bake rollback``: edge cases on the lock file, and the command's exit codes and messages."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bake.cli import main as bake_main
from bake.errors import UsageError
from bake.model.lock import LockEntry, LockFile, Pin, PoolLock
from bake.rollback import rollback, unpin


def entry(ami: str, built: str, fp: str | None = None) -> LockEntry:
    return LockEntry(ami_id=ami, region="us-east-1", fingerprint=fp or f"fp-{ami}", base_ami="ami-0123456789abcdef0",
                     images=[], built_at=built)


@pytest.fixture
def lock(tmp_path: Path) -> LockFile:
    (tmp_path / "bake.toml").write_text(
        'region = "us-east-1"\n[pools.web]\nbase_ami = "ami-0123456789abcdef0"\n'
        'images = ["docker.io/library/nginx:1.27"]\n[pools.new]\nbase_ami = "ami-0123456789abcdef0"\n'
        'images = ["docker.io/library/nginx:1.27"]\n')
    lf = LockFile(tmp_path / "amis.lock.json")
    for i, ami in enumerate(["ami-00000001", "ami-00000002", "ami-00000003"], start=1):
        lf.update("web", lambda p, e=entry(ami, f"2025-0{i}-01T00:00:00Z"): p.promoted(e))
    return lf


def cli(lock: LockFile, *args: str) -> int:
    return run_cli(["rollback", *args, "--config", str(lock.path.parent / "bake.toml")])


def run_cli(argv: list[str]) -> int:
    """bake.cli.main in-process, with the test runner's own signal handlers put back after."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return bake_main(argv)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_rollback_to_previous_records_and_pins(lock: LockFile) -> None:
    r = rollback(lock, "web", now=lambda: "2025-05-05T00:00:00Z")
    assert (r.from_ami, r.to_ami) == ("ami-00000003", "ami-00000002")
    pool = lock.read().pool("web")
    assert pool.current.ami_id == "ami-00000002"
    assert pool.current.rolled_back_at == "2025-05-05T00:00:00Z"
    assert pool.current.rolled_back_from == "ami-00000003"
    assert [e.ami_id for e in pool.history] == ["ami-00000003", "ami-00000001"]
    assert pool.pinned == Pin(ami_id="ami-00000002", reason="rollback", at="2025-05-05T00:00:00Z",
                              fingerprint="fp-ami-00000003")


def test_second_rollback_goes_further_back(lock: LockFile) -> None:
    rollback(lock, "web")
    r = rollback(lock, "web")
    assert (r.from_ami, r.to_ami) == ("ami-00000002", "ami-00000001")
    pool = lock.read().pool("web")
    assert [e.ami_id for e in pool.history] == ["ami-00000002", "ami-00000003"]
    with pytest.raises(UsageError, match="no AMI older than the current ami-00000001.*--to"):
        rollback(lock, "web")


def test_rollback_to_a_named_history_ami(lock: LockFile) -> None:
    r = rollback(lock, "web", to="ami-00000001")
    assert r.to_ami == "ami-00000001"
    assert [e.ami_id for e in lock.read().pool("web").history] == ["ami-00000003", "ami-00000002"]


def test_to_not_in_history_exits_2_listing_history(lock: LockFile, capsys: pytest.CaptureFixture[str]) -> None:
    before = lock.path.read_text()
    assert cli(lock, "web", "--to", "ami-0000dead") == 2
    err = capsys.readouterr().err
    assert "ami-0000dead is not in the pool's history" in err
    assert "ami-00000002" in err and "ami-00000001" in err
    assert lock.path.read_text() == before, "a refused rollback writes nothing"
    assert cli(lock, "web", "--to", "ami-00000003") == 2
    assert "already current" in capsys.readouterr().err


def test_no_history_and_no_record(lock: LockFile, capsys: pytest.CaptureFixture[str]) -> None:
    lock.update("new", lambda p: p.promoted(entry("ami-000000aa", "2025-01-01T00:00:00Z")))
    assert cli(lock, "new") == 2
    assert "no history" in capsys.readouterr().err
    json.loads(lock.path.read_text())
    lf2 = LockFile(lock.path.parent / "other.lock.json")
    with pytest.raises(UsageError, match="python -m bake build --pool web"):
        rollback(lf2, "web")
    assert cli(lock, "nope") == 2
    assert "no pool named 'nope'" in capsys.readouterr().err


def test_cli_rollback_then_unpin(lock: LockFile, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(lock, "web") == 0
    out = capsys.readouterr().out
    assert "rolled back from ami-00000003 to ami-00000002" in out and "pinned" in out
    assert lock.read().pool("web").pinned is not None
    assert cli(lock, "web", "--unpin") == 0
    assert "unpinned (was pinned on ami-00000002" in capsys.readouterr().out
    pool = lock.read().pool("web")
    assert pool.pinned is None and pool.current.ami_id == "ami-00000002"  # unpin changes nothing else
    assert cli(lock, "web", "--unpin") == 0
    assert "not pinned" in capsys.readouterr().out
    assert unpin(lock, "web") is None
    with pytest.raises(UsageError, match="no record"):
        unpin(lock, "new")


def test_rolling_back_a_pinned_pool_repins_with_the_old_fingerprint(lock: LockFile) -> None:
    rollback(lock, "web")
    rollback(lock, "web", to="ami-00000003")  # roll forward again, by name
    pool = lock.read().pool("web")
    assert pool.current.ami_id == "ami-00000003"
    assert pool.pinned.ami_id == "ami-00000003" and pool.pinned.fingerprint == "fp-ami-00000002"


def test_lock_beside_config_and_explicit_lock(lock: LockFile, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.json"
    other.write_text(lock.path.read_text())
    assert run_cli(["rollback", "web", "--config", str(tmp_path / "bake.toml"), "--lock", str(other)]) == 0
    assert LockFile(other).read().pool("web").current.ami_id == "ami-00000002"
    assert lock.read().pool("web").current.ami_id == "ami-00000003"
    assert isinstance(lock.read().pool("web"), PoolLock)
