"""The sandbox's moto applies CopyImage's TagSpecifications as AWS does (bake_sandbox/moto_copy_tags.py):
the copy and its snapshot get them, another resource type is refused. In-process moto here; the
distribution fault tests run it in the sandbox's server."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from bake_sandbox import moto_copy_tags


def copy(ec2, **kw):  # noqa: ANN001, ANN003, ANN201
    source = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    away = boto3.client("ec2", region_name="eu-west-1")
    return away, away.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="copy", **kw)


def test_the_copy_and_its_snapshot_carry_the_tag_specifications(in_process_ec2) -> None:  # noqa: ANN001
    moto_copy_tags.install()
    specs = [{"ResourceType": "image", "Tags": [{"Key": "bake:tool", "Value": "eks-image-bake"}]},
             {"ResourceType": "snapshot", "Tags": [{"Key": "bake:run", "Value": "r1"}]}]
    away, resp = copy(in_process_ec2, TagSpecifications=specs)
    image = away.describe_images(ImageIds=[resp["ImageId"]])["Images"][0]
    assert image["Tags"] == [{"Key": "bake:tool", "Value": "eks-image-bake"}]
    snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert away.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["Tags"] == [{"Key": "bake:run", "Value": "r1"}]
    _, plain = copy(in_process_ec2)  # none asked: none given
    assert not away.describe_images(ImageIds=[plain["ImageId"]])["Images"][0].get("Tags")


def test_another_resource_type_is_refused(in_process_ec2) -> None:  # noqa: ANN001
    moto_copy_tags.install()
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        copy(in_process_ec2, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}])
