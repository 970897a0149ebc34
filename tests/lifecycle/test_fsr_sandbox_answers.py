"""The sandbox's moto answers EBS fast snapshot restore (moto itself does not): state is kept,
Describe filters, a disabled pair stays listed as ``disabled`` (Terraform's provider waits for it)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _snapshot(ec2) -> str:  # noqa: ANN001
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    return ec2.create_snapshot(VolumeId=vol)["SnapshotId"]


def test_enable_describe_disable_keep_state(aws) -> None:  # noqa: ANN001
    ec2 = aws.ec2
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


def test_bad_zone_is_unsuccessful_and_unknown_snapshot_is_an_error(aws) -> None:  # noqa: ANN001
    ec2 = aws.ec2
    snap = _snapshot(ec2)
    out = ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-west-2a"], SourceSnapshotIds=[snap])
    assert out["Successful"] == []
    assert out["Unsuccessful"][0]["FastSnapshotRestoreStateErrors"][0]["AvailabilityZone"] == "us-west-2a"
    with pytest.raises(ClientError) as e:
        ec2.enable_fast_snapshot_restores(AvailabilityZones=["us-east-1a"], SourceSnapshotIds=["snap-0123456789abcdef0"])
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
