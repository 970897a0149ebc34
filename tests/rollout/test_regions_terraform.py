"""Pools in two regions in one stack, as real Terraform plans and applies against a moto server.

``web`` lives in the stack's region (us-east-1), ``eu`` in eu-west-1 (``node_region``), where it
launches the copy the bake made ([pools.eu.distribute] regions); both write their current AMI as
an SSM parameter (``aws:ec2:image``) in every region they have an AMI in. The flow: bake (an AMI
in us-east-1, CopyImage into eu-west-1: moto copies between regions), synth, apply; rebake,
plan, apply; ``bake rollback`` both, plan, apply. One moto server serves every region.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.terraform import PYTHON, Moto, Project, changes, needs_terraform

from bake.model.lock import ImageDigest, LockEntry, LockFile

pytestmark = [pytest.mark.terraform, needs_terraform()]

HOME, AWAY = "us-east-1", "eu-west-1"
POOLS = ("web", "eu")
CACHE_POOL = "dveu"  # cache = "data-volume", its nodes in AWAY: the cache snapshot's copy there, on AWAY's stock AMI


def ec2_in(moto: Moto, region: str, service: str = "ec2"):  # noqa: ANN201
    return boto3.client(service, endpoint_url=moto.url, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def bake_and_copy(moto: Moto, name: str) -> tuple[str, str]:
    """Stand-in for a bake with a copy: an AMI in HOME, copied into AWAY."""
    ec2 = ec2_in(moto, HOME)
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="t3.medium")["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    copy = ec2_in(moto, AWAY).copy_image(SourceImageId=ami, SourceRegion=HOME, Name=name)["ImageId"]
    return ami, copy


def record(lock: Path, pool: str, ami: str, copy: str, fingerprint: str, built_at: str) -> None:
    entry = LockEntry(ami_id=ami, region=HOME, fingerprint=fingerprint, base_ami="ami-ekslinux",
                      images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "a" * 64)],
                      built_at=built_at, copies={AWAY: copy})
    LockFile(lock).update(pool, lambda p: p.promoted(entry))


def cache_and_copy(moto: Moto) -> tuple[str, str]:
    """Stand-in for a data-volume bake with a copy: a cache snapshot in HOME, copied into AWAY."""
    ec2 = ec2_in(moto, HOME)
    vol = ec2.create_volume(Size=4, AvailabilityZone=f"{HOME}a", VolumeType="gp3")["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.delete_volume(VolumeId=vol)
    return snap, ec2_in(moto, AWAY).copy_snapshot(SourceSnapshotId=snap, SourceRegion=HOME)["SnapshotId"]


def record_cache(lock: Path, snap: str, copy: str, away_stock: str, fingerprint: str, built_at: str) -> None:
    entry = LockEntry(ami_id=snap, region=HOME, fingerprint=fingerprint, base_ami="ami-ekslinux",
                      images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "b" * 64)],
                      built_at=built_at, copies={AWAY: copy}, base_amis={AWAY: away_stock}, snapshot_ids=[snap],
                      snapshot_gib=4, cache="data-volume", cache_snapshot_id=snap, data_device="/dev/xvdb")
    LockFile(lock).update(CACHE_POOL, lambda p: p.promoted(entry))


def group_template(moto: Moto, region: str, name: str) -> dict[str, Any]:
    asg = ec2_in(moto, region, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    spec = asg["LaunchTemplate"]
    version = ec2_in(moto, region).describe_launch_template_versions(
        LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])["LaunchTemplateVersions"][0]
    return version["LaunchTemplateData"]


def group_image(moto: Moto, region: str, name: str) -> str:
    return group_template(moto, region, name)["ImageId"]


def cache_launch(moto: Moto) -> tuple[str, str]:
    """The data-volume pool's group in AWAY: (its AMI, the snapshot at /dev/xvdb)."""
    data = group_template(moto, AWAY, CACHE_POOL)
    [cache] = [m["Ebs"]["SnapshotId"] for m in data["BlockDeviceMappings"] if m["DeviceName"] == "/dev/xvdb"]
    return data["ImageId"], cache


def observed(moto: Moto) -> dict[str, Any]:
    """Each group's AMI, and each SSM parameter's value, data type, per region."""
    ssm = {}
    for region in (HOME, AWAY):
        for pool in POOLS:
            p = ec2_in(moto, region, "ssm").get_parameter(Name=f"/eks/nodes/{pool}")["Parameter"]
            ssm[(pool, region)] = (p["Value"], p.get("DataType"))
    return {"web": group_image(moto, HOME, "web"), "eu": group_image(moto, AWAY, "eu"), "ssm": ssm,
            CACHE_POOL: cache_launch(moto)}


@pytest.fixture(scope="module")
def flow(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    moto = moto_server
    p = Project(dir=tmp_path_factory.mktemp("regions"), env=dict(moto.env))
    p.write_config(f"""
        region = "{HOME}"

        [defaults]
        base_ami = "ami-ekslinux"
        images = ["docker.io/library/nginx:1.27"]
        instance_type = "t3.medium"

        [pools.web]
        [pools.web.distribute]
        regions = ["{AWAY}"]
        ssm_parameter = "/eks/nodes/web"
        [pools.web.asg]
        availability_zones = ["{HOME}a"]
        [pools.web.launch_template]
        root_volume_size = 40

        [pools.eu]
        node_region = "{AWAY}"
        [pools.eu.distribute]
        regions = ["{AWAY}"]
        ssm_parameter = "/eks/nodes/eu"
        [pools.eu.asg]
        availability_zones = ["{AWAY}a"]
        [pools.eu.launch_template]
        root_volume_size = 40

        [pools.{CACHE_POOL}]
        base_ami = "ssm:/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
        cache = "data-volume"
        node_region = "{AWAY}"
        [pools.{CACHE_POOL}.distribute]
        regions = ["{AWAY}"]
        [pools.{CACHE_POOL}.asg]
        availability_zones = ["{AWAY}a"]
        [pools.{CACHE_POOL}.launch_template]
        root_volume_size = 40
        user_data = "apiVersion: node.eks.aws/v1alpha1\\nkind: NodeConfig\\nspec:\\n  cluster:\\n    name: c1\\n"
    """)
    amis = {pool: [bake_and_copy(moto, f"{pool}-{i}") for i in (1, 2)] for pool in POOLS}
    away_stock = ec2_in(moto, AWAY).copy_image(SourceImageId="ami-ekslinux", SourceRegion=HOME, Name="stock")["ImageId"]
    caches = [cache_and_copy(moto) for _ in (1, 2)]
    out: dict[str, Any] = {"project": p, "amis": amis, "caches": caches, "away_stock": away_stock}
    for pool in POOLS:
        record(p.lock, pool, *amis[pool][0], f"{pool}-fp1", "2026-01-01T00:00:00Z")
    record_cache(p.lock, *caches[0], away_stock, "cache-fp1", "2026-01-01T00:00:00Z")
    out["plan_create"] = p.roll_out(first=True)
    out["synth"] = p.synthesized()
    out["after_create"] = observed(moto)

    base_lock = p.dir / "base.lock.json"
    base_lock.write_text(p.lock.read_text())
    for pool in POOLS:
        record(p.lock, pool, *amis[pool][1], f"{pool}-fp2", "2026-02-01T00:00:00Z")
    record_cache(p.lock, *caches[1], away_stock, "cache-fp2", "2026-02-01T00:00:00Z")
    p.synth()
    out["plan_rebake"] = p.plan_json()
    (p.dir / "plan.json").write_text(json.dumps(out["plan_rebake"]))
    out["review"] = {fmt: p.run(PYTHON, "-m", "bake", "review", "--plan", str(p.dir / "plan.json"), "--base-lock",
                                str(base_lock), "--lock", str(p.lock), "--format", fmt) for fmt in ("markdown", "json")}
    p.apply_plan()
    out["after_rebake"] = observed(moto)

    out["rollback_runs"] = {pool: p.bake("rollback", pool, check=False) for pool in (*POOLS, CACHE_POOL)}
    out["plan_rollback"] = p.roll_out()
    out["after_rollback"] = observed(moto)
    return out


def test_one_provider_alias_per_other_region_and_the_pool_resources_use_it(flow: dict[str, Any]) -> None:
    synth = flow["synth"]
    providers = synth["provider"]["aws"]
    assert [(pv.get("alias"), pv["region"]) for pv in providers] == [(None, HOME), (AWAY, AWAY)]
    res = synth["resource"]
    assert "provider" not in res["aws_launch_template"]["web"]
    assert res["aws_launch_template"]["eu"]["provider"] == f"aws.{AWAY}"
    assert res["aws_autoscaling_group"]["eu"]["provider"] == f"aws.{AWAY}"
    ssm = res["aws_ssm_parameter"]
    assert ssm[f"eu_{AWAY}"]["provider"] == f"aws.{AWAY}" and "provider" not in ssm[f"eu_{HOME}"]
    assert {v["data_type"] for v in ssm.values()} == {"aws:ec2:image"}


def test_each_group_launches_its_regions_ami_and_the_parameters_hold_them(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    acts = {a: c["actions"] for a, c in changes(flow["plan_create"]).items()}
    assert acts == {f"{t}.{pool}": ["create"] for t in ("aws_launch_template", "aws_autoscaling_group")
                    for pool in (*POOLS, CACHE_POOL)} \
        | {f"aws_ssm_parameter.{pool}_{r}": ["create"] for pool in POOLS for r in (HOME, AWAY)}
    seen = flow["after_create"]
    assert seen["web"] == amis["web"][0][0]  # the original, in the stack's region
    assert seen["eu"] == amis["eu"][0][1]  # the copy, in eu-west-1
    for pool in POOLS:
        ami, copy = amis[pool][0]
        assert seen["ssm"][(pool, HOME)] == (ami, "aws:ec2:image")
        assert seen["ssm"][(pool, AWAY)] == (copy, "aws:ec2:image")


def test_a_rebake_updates_each_regions_template_in_place(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    ch = changes(flow["plan_rebake"])
    lt = ch["aws_launch_template.eu"]
    assert lt["actions"] == ["update"]
    assert (lt["before"]["image_id"], lt["after"]["image_id"]) == (amis["eu"][0][1], amis["eu"][1][1])
    assert ch["aws_autoscaling_group.eu"]["actions"] == ["update"]
    assert ch["aws_launch_template.web"]["actions"] == ["update"]
    assert ch[f"aws_ssm_parameter.eu_{AWAY}"]["actions"] == ["update"]
    seen = flow["after_rebake"]
    assert (seen["web"], seen["eu"]) == (amis["web"][1][0], amis["eu"][1][1])
    assert seen["ssm"][("eu", AWAY)][0] == amis["eu"][1][1] and seen["ssm"][("web", HOME)][0] == amis["web"][1][0]


def test_the_review_shows_each_regions_ami_and_ties_the_copys_template_to_its_pool(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    md = flow["review"]["markdown"].stdout
    for pool in POOLS:
        (old, old_copy), (new, new_copy) = amis[pool]
        assert f"| AMI in {HOME} | `{old}` | `{new}` |" in md
        assert f"| AMI in {AWAY} | `{old_copy}` | `{new_copy}` |" in md
    review = json.loads(flow["review"]["json"].stdout)
    assert review["warnings"] == [], "the eu pool's template moves to its copy, which the lock names"
    eu = next(p for p in review["pools"] if p["pool"] == "eu")
    assert eu["regions"][1] == {"region": AWAY, "before": amis["eu"][0][1], "after": amis["eu"][1][1]}
    assert eu["plan_images"] == [{"address": "aws_launch_template.eu", "action": "update", "field": "image_id",
                                  "before": amis["eu"][0][1], "after": amis["eu"][1][1]}]


def test_rollback_goes_back_in_every_region(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    for pool, run in flow["rollback_runs"].items():
        assert run.returncode == 0, run.stderr
    ch = changes(flow["plan_rollback"])
    assert ch["aws_launch_template.eu"]["after"]["image_id"] == amis["eu"][0][1]
    assert ch["aws_launch_template.web"]["after"]["image_id"] == amis["web"][0][0]
    seen = flow["after_rollback"]
    assert (seen["web"], seen["eu"]) == (amis["web"][0][0], amis["eu"][0][1])
    for pool in POOLS:
        ami, copy = amis[pool][0]
        assert seen["ssm"][(pool, HOME)][0] == ami and seen["ssm"][(pool, AWAY)][0] == copy


def test_a_node_region_without_a_copy_fails_synthesis_naming_the_pool_and_the_command(
        flow: dict[str, Any], tmp_path: Path) -> None:
    p = Project(dir=tmp_path, env=dict(flow["project"].env))
    p.write_config(flow["project"].config.read_text())
    lock = json.loads(flow["project"].lock.read_text())
    del lock["pools"]["eu"]["current"]["copies"]
    p.lock.write_text(json.dumps(lock))
    r = p.synth(check=False)
    assert r.returncode != 0
    assert f"pool 'eu': no AMI in {AWAY}" in r.stderr and "python -m bake build --pool eu" in r.stderr, r.stderr


def test_a_data_volume_pool_in_a_copy_region_maps_the_copy_on_that_regions_stock_ami(flow: dict[str, Any]) -> None:
    """Its nodes in AWAY launch AWAY's stock AMI (the lock's base_amis) with the cache snapshot's
    copy there at /dev/xvdb (the lock's copies); a rebake moves the copy in place, rollback back."""
    (first, first_copy), (second, second_copy) = flow["caches"]
    stock = flow["away_stock"]
    assert flow["synth"]["resource"]["aws_launch_template"][CACHE_POOL]["provider"] == f"aws.{AWAY}"
    assert flow["after_create"][CACHE_POOL] == (stock, first_copy)
    lt = changes(flow["plan_rebake"])[f"aws_launch_template.{CACHE_POOL}"]
    assert lt["actions"] == ["update"] and lt["after"]["image_id"] == stock
    assert flow["after_rebake"][CACHE_POOL] == (stock, second_copy)
    assert flow["rollback_runs"][CACHE_POOL].returncode == 0, flow["rollback_runs"][CACHE_POOL].stderr
    assert flow["after_rollback"][CACHE_POOL] == (stock, first_copy)
    assert {first, second}.isdisjoint({first_copy, second_copy})  # the copies, not the originals in HOME
