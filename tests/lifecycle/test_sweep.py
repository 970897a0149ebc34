"""``bake sweep`` against a moto server: a killed build's leftovers, found by their tags."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bake import tags
from bake.lifecycle.common import parse_duration
from bake.lifecycle.sweep import find_leftovers
from bake.model.lock import LockFile, PoolLock
from lifecycle_helpers import bake_ami, iso, lock_entry
from support.cli import run_bake


def killed_bake(ec2: Any, run_id: str, pool: str, created: str) -> SimpleNamespace:
    """What a bake killed by SIGKILL mid-build leaves: key pair, group, running builder."""
    def spec(kind: str, role: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": tags.as_aws(tags.run_tags(run_id, pool, role, created))}]

    key = f"eks-bake-{run_id}"
    key_id = ec2.create_key_pair(KeyName=key, KeyType="ed25519", TagSpecifications=spec("key-pair", "key-pair"))["KeyPairId"]
    sg = ec2.create_security_group(GroupName=f"eks-bake-{run_id}", Description="bake builder",
                                   TagSpecifications=spec("security-group", "security-group"))["GroupId"]
    inst = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="m5.large", KeyName=key,
                             SecurityGroupIds=[sg], TagSpecifications=spec("instance", "builder"))["Instances"][0]["InstanceId"]
    return SimpleNamespace(key=key, key_id=key_id, sg=sg, instance=inst, run_id=run_id)


def state(ec2: Any, leftovers: SimpleNamespace) -> dict[str, bool]:
    inst = ec2.describe_instances(InstanceIds=[leftovers.instance])["Reservations"][0]["Instances"][0]
    keys = {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    return {"instance": inst["State"]["Name"] != "terminated", "key": leftovers.key in keys, "sg": leftovers.sg in groups}


@pytest.fixture
def account(moto_server_aws: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    ec2 = moto_server_aws.ec2
    old = killed_bake(ec2, "run-old", "general", iso(5 * 3600))
    older = killed_bake(ec2, "run-older", "gpu", iso(26 * 3600))
    fresh = killed_bake(ec2, "run-fresh", "general", iso(10 * 60))
    # A good AMI of an old run, in the lock; another good one, not in the lock (prune's business).
    good, good_snaps = bake_ami(ec2, "general", iso(30 * 3600), run_id="run-good")
    stray, stray_snaps = bake_ami(ec2, "general", iso(29 * 3600), run_id="run-stray")
    # An orphaned snapshot of a killed run (its AMI never got registered).
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    orphan = ec2.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags.as_aws(
        tags.run_tags("run-old", "general", "ami", iso(5 * 3600)))}])["SnapshotId"]
    # Not ours: never touched.
    ec2.create_key_pair(KeyName="someone-elses")
    theirs = ec2.create_security_group(GroupName="someone-elses", Description="not ours")["GroupId"]
    lock = LockFile(tmp_path / "amis.lock.json")
    lock.update("general", lambda _: PoolLock(current=lock_entry(good)))
    return SimpleNamespace(ec2=ec2, old=old, older=older, fresh=fresh, good=good, good_snaps=good_snaps, stray=stray,
                           stray_snaps=stray_snaps, orphan=orphan, theirs=theirs, lock=lock.path)


def _snapshot_ids(ec2: Any) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": f"tag:{tags.KEY_TOOL}", "Values": [tags.TOOL]}])["Snapshots"]}


def test_dry_run_then_yes_then_nothing_left(account: SimpleNamespace, tmp_path: Path) -> None:
    ec2 = account.ec2
    dry = run_bake("sweep", "--lock", str(account.lock), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    listed, _, rest = dry.stdout.partition("leftovers older than 2h")
    for lo in (account.old, account.older):
        for rid in (lo.instance, lo.sg, lo.key_id):
            assert rid in rest, rid
    assert account.orphan in rest
    for rid in (account.fresh.instance, account.fresh.sg, account.fresh.key_id):
        assert rid in listed and rid not in rest  # shown as left alone, not as a leftover
    for rid in (account.good, account.stray, *account.good_snaps, *account.stray_snaps, account.theirs, "someone-elses"):
        assert rid not in dry.stdout
    lines = rest.splitlines()
    order = [next(i for i, line in enumerate(lines) if rid in line)
             for rid in (account.older.instance, account.old.instance, account.older.sg, account.old.sg,
                         account.older.key_id, account.old.key_id, account.orphan)]
    assert order == sorted(order), "instances, groups, key pairs, snapshots; oldest first"
    assert "would remove 7 resource(s)" in dry.stdout
    assert state(ec2, account.old) == {"instance": True, "key": True, "sg": True}

    wet = run_bake("sweep", "--yes", "--lock", str(account.lock), cwd=tmp_path)
    assert wet.returncode == 0, wet.stdout + wet.stderr
    for lo in (account.old, account.older):
        assert state(ec2, lo) == {"instance": False, "key": False, "sg": False}
    assert state(ec2, account.fresh) == {"instance": True, "key": True, "sg": True}
    snaps = _snapshot_ids(ec2)
    assert account.orphan not in snaps
    assert set(account.good_snaps) | set(account.stray_snaps) <= snaps
    images = {i["ImageId"]: i["State"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert images[account.good] == "available" and images[account.stray] == "available"
    assert account.theirs in {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert "someone-elses" in {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}

    again = run_bake("sweep", "--yes", "--lock", str(account.lock), cwd=tmp_path)
    assert again.returncode == 0 and "no leftovers older than 2h" in again.stdout

    # A shorter threshold catches the 10-minute-old run too.
    short = run_bake("sweep", "--older-than", "5m", "--yes", "--lock", str(account.lock), cwd=tmp_path)
    assert short.returncode == 0, short.stderr
    assert state(ec2, account.fresh) == {"instance": False, "key": False, "sg": False}


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    r = run_bake("sweep", "--older-than", "soon", cwd=tmp_path)
    assert r.returncode == 2 and "not a duration" in r.stderr


@pytest.mark.parametrize("text,seconds", [("90m", 5400), ("2h", 7200), ("1d", 86400), ("45s", 45), ("1w", 604800)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


class FakeEc2:
    """Only what find_leftovers reads, for states moto cannot produce (a pending or failed AMI)."""

    def __init__(self, images: list[dict], snapshots: list[dict]):
        self.data = {"describe_images": ("Images", images), "describe_snapshots": ("Snapshots", snapshots),
                     "describe_instances": ("Reservations", []), "describe_security_groups": ("SecurityGroups", [])}

    def get_paginator(self, op: str) -> Any:
        key, items = self.data[op]
        return SimpleNamespace(paginate=lambda **kw: [{key: items}])

    def describe_key_pairs(self, **kw: Any) -> dict:
        return {"KeyPairs": []}


def _t(run: str, created: str) -> list[dict]:
    return tags.as_aws(tags.run_tags(run, "p", "ami", created))


def test_unfinished_amis_go_good_ones_and_their_snapshots_stay() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    old, new = "2025-06-01T06:00:00Z", "2025-06-01T11:30:00Z"
    bdm = lambda snap: [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}]  # noqa: E731
    images = [
        {"ImageId": "ami-pending", "State": "pending", "Tags": _t("r1", old), "BlockDeviceMappings": bdm("snap-p")},
        {"ImageId": "ami-failed", "State": "failed", "Tags": _t("r2", old), "BlockDeviceMappings": bdm("snap-f")},
        {"ImageId": "ami-good", "State": "available", "Tags": _t("r3", old), "BlockDeviceMappings": bdm("snap-g")},
        {"ImageId": "ami-locked", "State": "pending", "Tags": _t("r4", old), "BlockDeviceMappings": bdm("snap-l")},
        {"ImageId": "ami-running", "State": "pending", "Tags": _t("r5", new), "BlockDeviceMappings": bdm("snap-r")},
        {"ImageId": "ami-untagged", "State": "failed", "Tags": [], "BlockDeviceMappings": bdm("snap-u")},
    ]
    snapshots = [
        {"SnapshotId": "snap-g", "Tags": _t("r3", old)},  # backs a good AMI
        {"SnapshotId": "snap-o", "Tags": _t("r6", old)},  # orphan
        {"SnapshotId": "snap-n", "Tags": _t("r5", new)},  # a running build's
    ]
    plan = find_leftovers(FakeEc2(images, snapshots), timedelta(hours=2), {"ami-locked": "p current"}, now=now)
    found = [(r.kind, r.id) for r in plan.leftovers]
    assert sorted(found) == sorted(
        [("image", "ami-failed"), ("image", "ami-pending"), ("snapshot", "snap-o"), ("snapshot", "snap-f"), ("snapshot", "snap-p")])
    # an AMI is deregistered before any snapshot goes (a snapshot backing an AMI cannot be deleted)
    kinds = [kind for kind, _ in found]
    assert kinds == sorted(kinds), found
    assert {r.id for r in plan.fresh} == {"ami-running", "snap-n"}
    kept = {r.id: why for r, why in plan.kept}
    assert "in the lock" in kept["ami-locked"] and "available" in kept["ami-good"] and "backs ami-good" in kept["snap-g"]


def test_a_data_volume_pools_cache_snapshots_stay_unless_unfinished() -> None:
    """A cache snapshot backs no AMI (docs/data-volume.md): the lock's and any completed one stay
    (prune retires them); one a killed bake left pending goes."""
    now = datetime(2025, 6, 1, 12, tzinfo=timezone.utc)
    old = "2025-06-01T06:00:00Z"

    def cache(run: str) -> list[dict]:
        return tags.as_aws(tags.run_tags(run, "p", "cache-snapshot", old))

    snapshots = [
        {"SnapshotId": "snap-current", "State": "completed", "Tags": cache("r1")},
        {"SnapshotId": "snap-older", "State": "completed", "Tags": cache("r2")},
        {"SnapshotId": "snap-killed", "State": "pending", "Tags": cache("r3")},
    ]
    plan = find_leftovers(FakeEc2([], snapshots), timedelta(hours=2), {"snap-current": "p current"}, now=now)
    assert [(r.kind, r.id) for r in plan.leftovers] == [("snapshot", "snap-killed")]
    kept = {r.id: why for r, why in plan.kept}
    assert "in the lock (p current)" in kept["snap-current"] and "bake prune" in kept["snap-older"]


def test_sweep_looks_in_every_region_the_config_distributes_to(moto_server_aws: SimpleNamespace, tmp_path: Path) -> None:
    """A killed bake's copy in eu-west-1 whose image never registered leaves a snapshot tagged
    with the run: found there by its tags, removed; the copy the lock names stays."""
    import boto3

    eu = boto3.client("ec2", region_name="eu-west-1")
    good, _ = bake_ami(moto_server_aws.ec2, "general", iso(30 * 3600), run_id="run-good")
    good_copy = eu.copy_image(SourceImageId=good, SourceRegion="us-east-1", Name="copy")["ImageId"]
    vol = eu.create_volume(AvailabilityZone="eu-west-1a", Size=8)["VolumeId"]
    orphan = eu.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags.as_aws(
        tags.run_tags("run-killed", "general", "ami", iso(5 * 3600),
                      {tags.KEY_SOURCE_REGION: "us-east-1"}))}])["SnapshotId"]
    LockFile(tmp_path / "amis.lock.json").update("general", lambda _: PoolLock(
        current=lock_entry(good).model_copy(update={"copies": {"eu-west-1": good_copy}})))
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.general]\nbase_ami = "ami-ekslinux"\nimages = ["nginx:1.27"]\n'
                   '[pools.general.distribute]\nregions = ["eu-west-1"]\n')

    home = run_bake("sweep", "--yes", "--region", "us-east-1", "--config", str(cfg), cwd=tmp_path)
    assert home.returncode == 0, home.stderr
    assert orphan in _snapshot_ids(eu), "--region us-east-1 looked elsewhere"
    r = run_bake("sweep", "--yes", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    away = r.stdout.split("== eu-west-1")[1]
    assert orphan in away and "run-killed" in away
    assert orphan not in _snapshot_ids(eu)
    assert eu.describe_images(ImageIds=[good_copy])["Images"][0]["State"] == "available"


def test_a_kept_builder_is_swept_at_once_whatever_its_age(moto_server_aws: SimpleNamespace, tmp_path: Path) -> None:
    ec2 = moto_server_aws.ec2
    kept = killed_bake(ec2, "run-kept", "general", iso(5 * 60))  # younger than any --older-than
    ec2.create_tags(Resources=[kept.instance, kept.sg], Tags=[{"Key": tags.KEY_KEPT, "Value": iso(60)}])
    fresh = killed_bake(ec2, "run-busy", "general", iso(5 * 60))  # a bake still running: left alone
    plan = find_leftovers(ec2, parse_duration("2h"))
    assert {r.id for r in plan.leftovers} == {kept.instance, kept.sg, kept.key_id}
    assert {fresh.instance, fresh.sg, fresh.key_id} <= {r.id for r in plan.fresh}
    wet = run_bake("sweep", "--yes", cwd=tmp_path)
    assert wet.returncode == 0, wet.stderr
    assert state(ec2, kept) == {"instance": False, "key": False, "sg": False}
    assert state(ec2, fresh) == {"instance": True, "key": True, "sg": True}
