"""`python -m bake plan` refuses a rollout that would exceed fast snapshot restore's quota of 5
snapshots per Region at its apply (bake/fsr_quota.py, docs/aws-rules.md): exit 2 naming the quota
and the pools; and passes when the pools rebake few enough at a time. Through the CLI against the
sandbox (the plan resolves base AMI and digests); nothing is baked: the lock entries are written
here, as a bake would have written them, and their fingerprints are stale, so the plan rebakes."""

from __future__ import annotations

import secrets

import pytest

from bake.model.lock import ImageDigest, LockEntry, LockFile

from support.cli import run_bake
from support.sandbox_bakes import write_config

pytestmark = [pytest.mark.sandbox]

FSR = {"asg": {"availability_zones": ["us-east-1a"]}, "fast_snapshot_restore": {"availability_zones": ["us-east-1a", "us-east-1b"]}}


def project(sandbox, tmp_path, count: int):  # noqa: ANN001, ANN201
    repo = f"fsr/{secrets.token_hex(4)}"
    sandbox.push_image(repo, "v1", size_mb=1)
    ref = f"{sandbox.info.registry}/{repo}:v1"
    names = [f"fsr{i}" for i in range(count)]
    config = write_config(tmp_path / "bake.toml", sandbox, {n: {"images": [ref], **FSR} for n in names})
    return config, names, ref


def test_six_first_bakes_with_fast_snapshot_restore_exit_2_naming_the_quota(sandbox, tmp_path):
    config, names, _ = project(sandbox, tmp_path, 6)
    r = run_bake("plan", "--config", str(config))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "fast snapshot restore quota: at most 5 snapshots per Region" in r.stderr
    assert "us-east-1: 6 snapshots" in r.stderr and f"pools {', '.join(names)}" in r.stderr
    assert r.stdout == "" and not (tmp_path / "amis.lock.json").exists()
    # Five of them at a time fit (the sixth has nothing in the stack yet).
    r = run_bake("plan", "--config", str(config), *[a for n in names[:5] for a in ("--pool", n)])
    assert r.returncode == 0, r.stderr


def test_three_rebakes_hold_six_snapshots_at_the_apply(sandbox, tmp_path):
    config, names, ref = project(sandbox, tmp_path, 3)
    lock = LockFile(tmp_path / "amis.lock.json")
    for n in names:  # each pool's current AMI has one snapshot with restores in both zones
        entry = LockEntry(ami_id=f"ami-0{secrets.token_hex(8)}", region="us-east-1", fingerprint="sha256:old",
                          base_ami="ami-ekslinux", images=[ImageDigest(ref=ref, digest="sha256:" + "0" * 64)],
                          built_at="2026-12-01T00:00:00Z", snapshot_ids=[f"snap-0{secrets.token_hex(8)}"])
        lock.update(n, lambda p, e=entry: p.promoted(e))
    r = run_bake("plan", "--config", str(config))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "us-east-1: 6 snapshots" in r.stderr and f"rebaking {', '.join(names)}" in r.stderr
    # Two rebakes at once: 3 held + 2 new = 5.
    r = run_bake("plan", "--config", str(config), "--pool", names[0], "--pool", names[1])
    assert r.returncode == 0, r.stderr
    assert "BAKE" in r.stdout
