"""The "nothing left" check itself (faultkit.Baseline, new_since), against a private moto server
(no sandbox): it sees what a run leaves in any region, tagged or not (snapshots: CreateImage's,
by their description, and the tool's, by tag), and an AMI's own snapshots are not leftovers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultkit import Baseline
from faultproxy import FaultProxy

from bake import tags
from bake_sandbox.private_moto import private_moto_server

ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[FaultProxy]:
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        p = FaultProxy(url).start()
        yield p
        p.stop()


def test_untagged_leftovers_in_any_region_are_found_and_an_amis_snapshots_are_not(proxy):
    baseline = Baseline(proxy, ENV)
    assert len(baseline.account.regions) > 10 and baseline.left() == {}
    far, home = baseline.account.ec2("ap-south-1"), baseline.account.ec2("us-east-1")
    key = far.create_key_pair(KeyName="stray")["KeyPairId"]
    group = far.create_security_group(GroupName="stray", Description="no tags")["GroupId"]
    vol = far.create_volume(AvailabilityZone="ap-south-1a", Size=1)["VolumeId"]
    # A copy's snapshot is tagged at creation (CopyImage's TagSpecifications): found by the tag.
    orphan = far.create_snapshot(VolumeId=vol, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": tags.KEY_TOOL, "Value": tags.TOOL}]}])["SnapshotId"]
    inst = home.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = home.create_image(InstanceId=inst, Name="kept")["ImageId"]  # its snapshots stay with it
    left = baseline.left()
    assert left == {"ap-south-1 key_pairs": [key], "ap-south-1 security_groups": [group],
                    "ap-south-1 snapshots": [orphan], "us-east-1 instances": [inst]}, left
    assert proxy.calls == [], "the check goes around the fault proxy: the tests' call log stays the bake's"
    # Once the AMI is gone, its snapshots are leftovers too, untagged as they are (CreateImage's own
    # description finds them).
    snaps = [b["Ebs"]["SnapshotId"] for b in home.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]]
    home.deregister_image(ImageId=image)
    assert baseline.left()["us-east-1 snapshots"] == sorted(snaps)
