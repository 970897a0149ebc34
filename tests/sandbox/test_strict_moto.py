"""The strict sandbox (bake_sandbox.moto_strict): for each rule, plain moto accepts the call and the
sandbox's moto server refuses it with AWS's error code, and still accepts the call AWS accepts.

Three private moto servers of their own (no shared sandbox needed): moto's own ``moto_server``,
the sandbox's server with ``BAKE_MOTO_STRICT=0`` (moto plus the sandbox's additions: plain moto
has no fast snapshot restore at all), and the sandbox's server as every test runs it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bake_sandbox.moto_strict import FSR_QUOTA, RULES
from bake_sandbox.private_moto import private_moto_server

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


class Aws:
    def __init__(self, url: str):
        self.url = url

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Aws]]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    env["PYTHONPATH"] = str(ROOT)
    moto_server = str(Path(sys.executable).with_name("moto_server"))
    with private_moto_server(tmp_path_factory.mktemp("plain"), program=[moto_server], env=env) as plain, \
            private_moto_server(tmp_path_factory.mktemp("lenient"), env={**env, "BAKE_MOTO_STRICT": "0"}) as lenient, \
            private_moto_server(tmp_path_factory.mktemp("strict"), env=env) as strict:
        yield {"plain": Aws(plain), "lenient": Aws(lenient), "strict": Aws(strict)}


def refused(call: Callable[[], Any], code: str) -> str:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == code, e.value.response
    return e.value.response["Error"]["Message"]


# -- one scenario per rule: (call on plain moto) accepted, (same call on strict) refused ----------
def _instance(ec2: Any) -> tuple[str, str]:
    image = ec2.describe_images(ImageIds=["ami-ekslinux"])["Images"][0]
    inst = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType="m5.large")["Instances"][0]
    devices = [m["DeviceName"] for m in inst.get("BlockDeviceMappings", [])]
    root = inst.get("RootDeviceName") or image["RootDeviceName"]
    if not devices:
        devices = [m["DeviceName"] for m in ec2.describe_instances(InstanceIds=[inst["InstanceId"]])
                   ["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]]
    assert root in devices, (root, devices)
    return inst["InstanceId"], root


def create_image_existing_mapping(servers: dict[str, Aws]) -> None:
    boosted = {"VolumeType": "gp3", "Iops": 3000, "Throughput": 125, "DeleteOnTermination": True}
    for name in ("plain", "strict"):
        ec2 = servers[name].client("ec2")
        instance, root = _instance(ec2)
        change = {"InstanceId": instance, "Name": f"changed-{name}",
                  "BlockDeviceMappings": [{"DeviceName": root, "Ebs": boosted}]}
        if name == "plain":
            assert ec2.create_image(**change)["ImageId"].startswith("ami-")
            continue
        message = refused(lambda: ec2.create_image(**change), "InvalidBlockDeviceMapping")
        assert "DeleteOnTermination" in message and "Iops, Throughput, VolumeType" in message
        for size in ({"VolumeSize": 100}, {"Encrypted": True}):
            refused(lambda: ec2.create_image(InstanceId=instance, Name="size", BlockDeviceMappings=[
                {"DeviceName": root, "Ebs": size}]), "InvalidBlockDeviceMapping")
        # What AWS accepts: DeleteOnTermination on the existing mapping, anything on a new device.
        assert ec2.create_image(InstanceId=instance, Name="kept", BlockDeviceMappings=[
            {"DeviceName": root, "Ebs": {"DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdq", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "Iops": 4000}},
        ])["ImageId"].startswith("ami-")


def fast_snapshot_restore_quota(servers: dict[str, Aws]) -> None:
    # Plain moto has no fast snapshot restore (HTTP 500): the lenient side is the sandbox without the rule.
    for name in ("lenient", "strict"):
        ec2 = servers[name].client("ec2")
        vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
        snaps = [ec2.create_snapshot(VolumeId=vol)["SnapshotId"] for _ in range(FSR_QUOTA + 1)]
        zones = [f"{REGION}a", f"{REGION}b"]  # counted per snapshot: two zones each still make five
        for snap in snaps[:FSR_QUOTA]:
            assert not ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snap], AvailabilityZones=zones)["Unsuccessful"]
        sixth = lambda: ec2.enable_fast_snapshot_restores(SourceSnapshotIds=[snaps[-1]], AvailabilityZones=zones[:1])  # noqa: E731
        if name == "lenient":
            assert sixth()["Successful"]
            continue
        assert "at most 5 snapshots per Region" in refused(sixth, "ResourceLimitExceeded")
        # Disabled in every zone, a snapshot stops counting: then the sixth fits.
        ec2.disable_fast_snapshot_restores(SourceSnapshotIds=[snaps[0]], AvailabilityZones=zones)
        assert sixth()["Successful"]


def launch_configuration_new_type(servers: dict[str, Aws]) -> None:
    for name in ("plain", "strict"):
        asg = servers[name].client("autoscaling")
        new = lambda: asg.create_launch_configuration(  # noqa: E731
            LaunchConfigurationName=f"new-{name}", ImageId="ami-ekslinux", InstanceType="m7i.large")
        if name == "plain":
            new()
            continue
        assert refused(new, "ValidationError") == "The specified instance type m7i.large is not valid"
        asg.create_launch_configuration(LaunchConfigurationName="old", ImageId="ami-ekslinux", InstanceType="m6i.large")


def copy_image_kms_without_encrypted(servers: dict[str, Aws]) -> None:
    key = "alias/bake-test"
    for name in ("plain", "strict"):
        ec2 = servers[name].client("ec2")
        copy = lambda **kw: ec2.copy_image(SourceImageId="ami-ekslinux", SourceRegion=REGION,  # noqa: E731
                                           Name=f"copy-{name}", KmsKeyId=key, **kw)
        if name == "plain":
            assert copy()["ImageId"].startswith("ami-")
            continue
        refused(copy, "InvalidParameterDependency")
        assert copy(Encrypted=True)["ImageId"].startswith("ami-")


SCENARIOS = {
    "create-image-existing-mapping": create_image_existing_mapping,
    "fast-snapshot-restore-quota": fast_snapshot_restore_quota,
    "launch-configuration-new-type": launch_configuration_new_type,
    "copy-image-kms-without-encrypted": copy_image_kms_without_encrypted,
}


def test_every_rule_has_its_scenario() -> None:
    assert set(SCENARIOS) == {r.id for r in RULES}


@pytest.mark.parametrize("rule", sorted(SCENARIOS))
def test_plain_moto_accepts_and_the_strict_sandbox_refuses(rule: str, servers: dict[str, Aws]) -> None:
    SCENARIOS[rule](servers)


def test_the_docs_table_is_the_rules_table() -> None:
    """docs/aws-rules.md shows RULES: each rule's id, page and date read, and no other rule."""
    text = (ROOT / "docs" / "aws-rules.md").read_text()
    ids = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M))
    assert ids == {r.id for r in RULES}
    for r in RULES:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{r.id}` |"))
        assert r.page.split()[0] in row and r.read in row, row
