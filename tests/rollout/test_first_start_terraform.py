"""First start on the rollout side, as real Terraform plans and applies against a moto server
(the sandbox's, which answers fast snapshot restore): the provisioned initialization rate in the
launch template, fast snapshot restore for every snapshot x zone of the current AMI, a rebake
whose single plan creates the new ones and destroys the old (the template updated in place, the
group not replaced), and a rollback that does the reverse. Beside it, a cache = "data-volume" pool
(issue 24) in the same stack: its template maps the cache snapshot at the data device with the
rate, on the stock AMI, with the user data that mounts it; a rebake moves the snapshot in place,
a rollback moves it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.terraform import Moto, Project, changes, needs_terraform, steady

from bake.model.lock import ImageDigest, LockEntry, LockFile

pytestmark = [pytest.mark.terraform, needs_terraform()]

ZONES = ["us-east-1a", "us-east-1b"]
FSR = "aws_ebs_fast_snapshot_restore"


def bake_ami(moto: Moto, name: str) -> tuple[str, list[str]]:
    """Stand-in for a bake: an AMI of moto's EKS AMI, and its snapshots."""
    ec2 = moto.client("ec2")
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="t3.medium")["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    image = ec2.describe_images(ImageIds=[ami])["Images"][0]
    return ami, [b["Ebs"]["SnapshotId"] for b in image["BlockDeviceMappings"] if "Ebs" in b]


def record(lock: Path, ami: str, snapshots: list[str], fp: str, built_at: str) -> None:
    entry = LockEntry(ami_id=ami, region="us-east-1", fingerprint=fp, base_ami="ami-ekslinux",
                      images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "b" * 64)],
                      built_at=built_at, cache_bytes=123456789, compressed_bytes=61728394, snapshot_ids=snapshots,
                      snapshot_gib=8, prewarm=True)
    LockFile(lock).update("web", lambda p: p.promoted(entry))


CACHE_USER_DATA = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n"


def cache_snapshot(moto: Moto) -> str:
    """Stand-in for a data-volume bake: a snapshot of a 4 GiB volume."""
    ec2 = moto.client("ec2")
    vol = ec2.create_volume(Size=4, AvailabilityZone="us-east-1a", VolumeType="gp3")["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.delete_volume(VolumeId=vol)
    return snap


def record_cache(lock: Path, snap: str, fp: str, built_at: str) -> None:
    entry = LockEntry(ami_id=snap, region="us-east-1", fingerprint=fp, base_ami="ami-ekslinux",
                      images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "b" * 64)],
                      built_at=built_at, snapshot_ids=[snap], snapshot_gib=4, cache="data-volume",
                      cache_snapshot_id=snap, data_device="/dev/xvdb")
    LockFile(lock).update("cache", lambda p: p.promoted(entry))


def fsr_states(moto: Moto) -> dict[tuple[str, str], str]:
    items = moto.client("ec2").describe_fast_snapshot_restores()["FastSnapshotRestores"]
    return {(i["SnapshotId"], i["AvailabilityZone"]): i["State"] for i in items}


def fsr_addresses(snapshots: list[str]) -> set[str]:
    return {f"{FSR}.web_{s}_{z}" for s in snapshots for z in ZONES}


@pytest.fixture(scope="module")
def flow(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    moto = moto_server
    p = Project(dir=tmp_path_factory.mktemp("first-start"), env=dict(moto.env))
    p.write_config("""
        region = "us-east-1"

        [pools.web]
        base_ami = "ami-ekslinux"
        images = ["docker.io/library/nginx:1.27"]
        instance_type = "t3.medium"
        [pools.web.asg]
        min_size = 1
        max_size = 2
        availability_zones = ["us-east-1a", "us-east-1b"]
        [pools.web.launch_template]
        root_volume_size = 40
        volume_initialization_rate = 200
        [pools.web.fast_snapshot_restore]
        availability_zones = ["us-east-1a", "us-east-1b"]

        [pools.cache]
        base_ami = "ami-ekslinux"
        images = ["docker.io/library/nginx:1.27"]
        instance_type = "t3.medium"
        cache = "data-volume"
        [pools.cache.asg]
        min_size = 1
        max_size = 2
        availability_zones = ["us-east-1a"]
        [pools.cache.launch_template]
        root_volume_size = 20
        volume_initialization_rate = 150
        user_data = "apiVersion: node.eks.aws/v1alpha1\\nkind: NodeConfig\\nspec:\\n  cluster:\\n    name: c1\\n"
    """)
    amis = [bake_ami(moto, f"web-{i}") for i in (1, 2)]
    snaps = [cache_snapshot(moto) for _ in (1, 2)]
    out: dict[str, Any] = {"project": p, "amis": amis, "cache_snapshots": snaps}
    record(p.lock, *amis[0], "fp1", "2025-01-01T00:00:00Z")
    record_cache(p.lock, snaps[0], "cfp1", "2025-01-01T00:00:00Z")
    out["plan_create"] = p.roll_out(first=True)
    out["synth"] = p.synthesized()
    out["fsr_after_create"] = fsr_states(moto)
    lt = moto.client("ec2").describe_launch_template_versions(LaunchTemplateName=_lt_name(moto), Versions=["$Latest"])
    out["lt_after_create"] = lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    out["cache_lt_after"] = [_lt_data(moto, "cache-")]

    out["lock_before_rebake"] = LockFile(p.lock).read()
    record(p.lock, *amis[1], "fp2", "2025-02-01T00:00:00Z")
    record_cache(p.lock, snaps[1], "cfp2", "2025-02-01T00:00:00Z")
    out["lock_after_rebake"] = LockFile(p.lock).read()
    out["plan_rebake"] = p.roll_out()
    out["fsr_after_rebake"] = fsr_states(moto)
    out["cache_lt_after"].append(_lt_data(moto, "cache-"))

    out["rollback_run"] = p.bake("rollback", "web", check=False)
    out["cache_rollback_run"] = p.bake("rollback", "cache", check=False)
    out["plan_rollback"] = p.roll_out()
    out["cache_lt_after"].append(_lt_data(moto, "cache-"))
    out["fsr_after_rollback"] = fsr_states(moto)
    out["plan_steady"] = p.plan_json()
    return out


def _lt_name(moto: Moto, prefix: str = "web-") -> str:
    templates = moto.client("ec2").describe_launch_templates()["LaunchTemplates"]
    return next(t["LaunchTemplateName"] for t in templates if t["LaunchTemplateName"].startswith(prefix))


def _lt_data(moto: Moto, prefix: str) -> dict[str, Any]:
    """The template's latest version as EC2 (moto) holds it."""
    lt = moto.client("ec2").describe_launch_template_versions(LaunchTemplateName=_lt_name(moto, prefix),
                                                               Versions=["$Latest"])
    return lt["LaunchTemplateVersions"][0]["LaunchTemplateData"]


def _cache_mapping(data: dict[str, Any]) -> dict[str, Any]:
    [m] = [m for m in data["BlockDeviceMappings"] if m["DeviceName"] == "/dev/xvdb"]
    return m["Ebs"]


def test_a_data_volume_pool_maps_the_cache_snapshot_on_the_stock_ami(flow: dict[str, Any]) -> None:
    import base64
    from email import message_from_string

    first = flow["cache_snapshots"][0]
    data = flow["cache_lt_after"][0]
    assert data["ImageId"] == "ami-ekslinux"  # the stock AMI: no AMI of the tool's
    ebs = _cache_mapping(data)
    assert (ebs["SnapshotId"], ebs["VolumeSize"], ebs["VolumeType"], ebs["VolumeInitializationRate"]) == (
        first, 4, "gp3", 150)
    assert ebs["DeleteOnTermination"] is True
    # The user's NodeConfig kept as nodeadm's part, and the mount of the volume before containerd.
    doc = message_from_string(base64.b64decode(data["UserData"]).decode())
    parts = {p.get_content_type(): p.get_payload() for p in doc.get_payload()}
    assert list(parts) == ["application/node.eks.aws", "text/x-shellscript"]
    assert parts["application/node.eks.aws"].strip() == CACHE_USER_DATA.strip()
    script = parts["text/x-shellscript"]
    assert "What=/dev/disk/by-label/bake-cache" in script and "Where=/var/lib/containerd" in script
    assert "Before=containerd.service" in script


def test_a_data_volume_rebake_moves_the_snapshot_in_place_and_rollback_moves_it_back(flow: dict[str, Any]) -> None:
    first, second = flow["cache_snapshots"]
    assert [_cache_mapping(d)["SnapshotId"] for d in flow["cache_lt_after"]] == [first, second, first]
    assert flow["cache_rollback_run"].returncode == 0, flow["cache_rollback_run"].stderr
    for plan, (before, after) in ((flow["plan_rebake"], (first, second)), (flow["plan_rollback"], (second, first))):
        ch = changes(plan)
        lt = ch["aws_launch_template.cache"]
        assert lt["actions"] == ["update"] and ch["aws_autoscaling_group.cache"]["actions"] == ["update"]
        snaps = [[m["ebs"][0].get("snapshot_id") for m in lt[side]["block_device_mappings"]] for side in ("before", "after")]
        assert (snaps[0][-1], snaps[1][-1]) == (before, after)
        assert lt["before"]["image_id"] == lt["after"]["image_id"] == "ami-ekslinux"


def test_rate_is_on_the_templates_root_volume(flow: dict[str, Any]) -> None:
    lt = flow["synth"]["resource"]["aws_launch_template"]["web"]
    assert lt["block_device_mappings"][0]["ebs"]["volume_initialization_rate"] == 200
    created = changes(flow["plan_create"])["aws_launch_template.web"]["after"]
    assert created["block_device_mappings"][0]["ebs"][0]["volume_initialization_rate"] == 200
    assert flow["lt_after_create"]["BlockDeviceMappings"][0]["Ebs"]["VolumeInitializationRate"] == 200


def test_fast_snapshot_restore_for_every_snapshot_and_zone(flow: dict[str, Any]) -> None:
    ami, snaps = flow["amis"][0]
    acts = {a: c["actions"] for a, c in changes(flow["plan_create"]).items() if a.startswith(FSR)}
    assert acts == {a: ["create"] for a in fsr_addresses(snaps)}
    assert flow["fsr_after_create"] == {(s, z): "enabled" for s in snaps for z in ZONES}


def test_rebake_one_plan_creates_the_new_and_destroys_the_old(flow: dict[str, Any]) -> None:
    (old_ami, old), (new_ami, new) = flow["amis"]
    ch = changes(flow["plan_rebake"])
    fsr = {a: c["actions"] for a, c in ch.items() if a.startswith(FSR)}
    assert fsr == {**{a: ["create"] for a in fsr_addresses(new)}, **{a: ["delete"] for a in fsr_addresses(old)}}
    lt = ch["aws_launch_template.web"]
    assert lt["actions"] == ["update"]
    assert (lt["before"]["image_id"], lt["after"]["image_id"]) == (old_ami, new_ami)
    assert ch["aws_autoscaling_group.web"]["actions"] == ["update"], "the group is updated, never replaced"
    states = flow["fsr_after_rebake"]
    assert {k: v for k, v in states.items() if k[0] in new} == {(s, z): "enabled" for s in new for z in ZONES}
    assert {k: v for k, v in states.items() if k[0] in old} == {(s, z): "disabled" for s in old for z in ZONES}


def test_rollback_plans_and_applies_the_reverse(flow: dict[str, Any]) -> None:
    (old_ami, old), (new_ami, new) = flow["amis"]
    assert flow["rollback_run"].returncode == 0, flow["rollback_run"].stderr
    ch = changes(flow["plan_rollback"])
    fsr = {a: c["actions"] for a, c in ch.items() if a.startswith(FSR)}
    assert fsr == {**{a: ["create"] for a in fsr_addresses(old)}, **{a: ["delete"] for a in fsr_addresses(new)}}
    assert ch["aws_launch_template.web"]["after"]["image_id"] == old_ami
    assert ch["aws_autoscaling_group.web"]["actions"] == ["update"]
    states = flow["fsr_after_rollback"]
    assert {k: v for k, v in states.items() if k[0] in old} == {(s, z): "enabled" for s in old for z in ZONES}
    assert {k: v for k, v in states.items() if k[0] in new} == {(s, z): "disabled" for s in new for z in ZONES}
    left = steady(flow["plan_steady"])
    assert left == {}, f"after the apply, nothing left to change: {left}"


def test_review_of_the_rebake_shows_the_first_read_figures(flow: dict[str, Any]) -> None:
    from bake.review import build_review, render_markdown

    review = build_review(flow["plan_rebake"], flow["lock_before_rebake"], flow["lock_after_rebake"])
    web = next(p for p in review.pools if p.pool == "web")
    assert web.first_read["fast_snapshot_restore_zones"] == ZONES
    assert web.first_read["volume_initialization_rate"] == 200
    assert web.first_read["credit_bucket"] == 10  # 1024 / 8 GiB, capped at 10
    md = render_markdown(review)
    # The data-volume pool: its cache snapshot moves; the stock AMI it keeps raises no stale-plan warning.
    first, second = flow["cache_snapshots"]
    cache = next(p for p in review.pools if p.pool == "cache")
    assert (cache.status, cache.ami_before, cache.ami_after) == ("changed", first, second)
    assert [(i["field"], i["before"], i["after"]) for i in cache.plan_images] == [("cache snapshot", first, second)]
    assert not any("pool cache" in w for w in review.warnings), review.warnings
    assert f"cache snapshot `{first}` → `{second}`" in md
    assert "fast snapshot restore in us-east-1a, us-east-1b on 1 snapshot(s)" in md
    assert "$1,095/month" in md
    assert "both volume_initialization_rate and fast_snapshot_restore" in md
