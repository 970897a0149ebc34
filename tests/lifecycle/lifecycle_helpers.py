"""Helpers for the lifecycle tests: make AMIs the way a bake makes them."""

from __future__ import annotations

import uuid

from bake import tags

def iso(seconds_ago: float) -> str:
    from datetime import datetime, timedelta, timezone

    t = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def bake_ami(ec2: object, pool: str, created: str, run_id: str | None = None) -> tuple[str, list[str]]:
    """An AMI made the way a bake makes one: a tagged builder from moto's EKS AMI, CreateImage
    with the AMI tagged, its snapshots tagged, the builder terminated. Returns (ami, snapshots)."""
    run_id = run_id or uuid.uuid4().hex[:12]
    builder = tags.as_aws(tags.run_tags(run_id, pool, "builder", created))
    inst = ec2.run_instances(  # type: ignore[attr-defined]
        ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="m5.large",
        TagSpecifications=[{"ResourceType": "instance", "Tags": builder}],
    )["Instances"][0]["InstanceId"]
    ami_tags = tags.as_aws(tags.run_tags(run_id, pool, "ami", created, {tags.KEY_FINGERPRINT: "f" * 16}))
    ami = ec2.create_image(  # type: ignore[attr-defined]
        InstanceId=inst, Name=f"eks-bake-{pool}-{run_id}", TagSpecifications=[{"ResourceType": "image", "Tags": ami_tags}]
    )["ImageId"]
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]  # type: ignore[attr-defined]
    snaps = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    ec2.create_tags(Resources=snaps, Tags=ami_tags)  # type: ignore[attr-defined]
    ec2.terminate_instances(InstanceIds=[inst])  # type: ignore[attr-defined]
    return ami, snaps


def lock_entry(ami: str, built_at: str = "2025-01-01T00:00:00Z") -> object:
    from bake.model.lock import ImageDigest, LockEntry

    return LockEntry(
        ami_id=ami, region="us-east-1", fingerprint="f" * 16, base_ami="ami-ekslinux",
        images=[ImageDigest(ref="nginx:1.27", digest="sha256:" + "a" * 64)], built_at=built_at,
    )
