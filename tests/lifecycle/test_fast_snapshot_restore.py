"""Fast snapshot restore in the sandbox's moto (moto itself lacks it): state is kept,
Describe filters, a disabled pair stays listed as ``disabled`` (Terraform's provider waits for
it); and `prune` keeps an AMI whose snapshot still has it enabled, naming the zones."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _snapshot(ec2) -> str:  # noqa: ANN001
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    return ec2.create_snapshot(VolumeId=vol)["SnapshotId"]


def test_enable_describe_disable_keep_state(moto_server_aws) -> None:  # noqa: ANN001
    ec2 = moto_server_aws.ec2
    a, b = _snapshot(ec2), _snapshot(ec2)
    out = ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-east-1a", "us-east-1b"], SourceSnapshotIds=[a, b])
    assert out["Unsuccessful"] == []
    assert sorted((i["SnapshotId"], i["AvailabilityZone"], i["State"]) for i in out["Successful"]) == sorted(
        (s, z, "enabled") for s in (a, b) for z in ("us-east-1a", "us-east-1b"))

    listed = ec2.describe_fast_snapshot_restores()["FastSnapshotRestores"]
    assert len(listed) == 4
    only = ec2.describe_fast_snapshot_restores(Filters=[
        {"Name": "snapshot-id", "Values": [a]}, {"Name": "availability-zone", "Values": ["us-east-1b"]}])
    assert [(i["SnapshotId"], i["AvailabilityZone"], i["State"]) for i in only["FastSnapshotRestores"]] == [
        (a, "us-east-1b", "enabled")]

    off = ec2.disable_fast_snapshot_restores(AvailabilityZones=["us-east-1b"], SourceSnapshotIds=[a])
    assert [(i["SnapshotId"], i["State"]) for i in off["Successful"]] == [(a, "disabled")]
    states = {(i["SnapshotId"], i["AvailabilityZone"]): i["State"]
              for i in ec2.describe_fast_snapshot_restores()["FastSnapshotRestores"]}
    assert states[(a, "us-east-1b")] == "disabled"
    assert states[(a, "us-east-1a")] == states[(b, "us-east-1b")] == "enabled"
    enabled = ec2.describe_fast_snapshot_restores(Filters=[{"Name": "state", "Values": ["enabled"]}])
    assert len(enabled["FastSnapshotRestores"]) == 3


def test_bad_zone_is_unsuccessful_and_unknown_snapshot_is_an_error(moto_server_aws) -> None:  # noqa: ANN001
    ec2 = moto_server_aws.ec2
    snap = _snapshot(ec2)
    out = ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-west-2a"], SourceSnapshotIds=[snap])
    assert out["Successful"] == []
    assert out["Unsuccessful"][0]["FastSnapshotRestoreStateErrors"][0]["AvailabilityZone"] == "us-west-2a"
    with pytest.raises(ClientError) as e:
        ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-east-1a"], SourceSnapshotIds=["snap-0123456789abcdef0"])
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"


def test_prune_keeps_an_ami_whose_snapshot_has_fast_snapshot_restore(moto_server_aws, tmp_path) -> None:  # noqa: ANN001
    from lifecycle_helpers import bake_ami, iso
    from support.cli import run_bake

    ec2 = moto_server_aws.ec2
    old, older = bake_ami(ec2, "general", iso(3 * 86400)), bake_ami(ec2, "general", iso(4 * 86400))
    newest = bake_ami(ec2, "general", iso(86400))
    ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-east-1b", "us-east-1a"], SourceSnapshotIds=old[1])
    r = run_bake("prune", "--keep", "1", "--yes", "--lock", str(tmp_path / "amis.lock.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if old[0] in line)
    assert " keep " in row
    assert f"fast snapshot restore still enabled on {old[1][0]} in us-east-1a, us-east-1b" in row
    images = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert old[0] in images and newest[0] in images and older[0] not in images
    assert ec2.describe_snapshots(SnapshotIds=old[1])["Snapshots"]

    ec2.disable_fast_snapshot_restores(AvailabilityZones=["us-east-1a", "us-east-1b"], SourceSnapshotIds=old[1])
    r = run_bake("prune", "--keep", "1", "--yes", "--lock", str(tmp_path / "amis.lock.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert old[0] not in {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
