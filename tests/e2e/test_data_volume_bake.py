"""A cache = "data-volume" pool end to end (issue 24): the bake pulls onto a second volume mounted
at containerd's root, snapshots that volume alone and registers no AMI; a node launched with the
snapshot mapped (its volume a copy of the snapshot's bytes behind a loop device) finds every image
by every reference, pinned, without a pull; a new stock AMI alone does not rebake it."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from bake import tags
from bake.data_volume import DEVICE, LABEL, by_id
from bake.model.lock import LockFile
from bake_sandbox import moto as sandbox_moto
from support.cli import run_bake
from support.sandbox_bakes import fresh_image, in_builder, write_config
from support.terraform import bake_ami

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]

MIRROR = "mirror.example.com/env/data-volume"


SHARED_WITH = "210987654321"  # [distribute] accounts: create-volume permission on the cache snapshot
AWAY = "us-west-2"  # [distribute] regions: a copy of the cache snapshot, and that region's stock AMI


@pytest.fixture(scope="module")
def dv_bake(sandbox, tmp_path_factory):
    """One data-volume pool baked once, on a base AMI parameter of its own (the shared one stays)."""
    d = tmp_path_factory.mktemp("data-volume")
    param = f"/bake-test/{uuid.uuid4().hex[:8]}/image_id"
    sandbox.client("ssm").put_parameter(Name=param, Value=sandbox.info.base_ami, Type="String")
    # AWAY's own stock AMI under the same parameter name, as EKS publishes one per region.
    away_stock = sandbox.client("ec2", AWAY).copy_image(SourceImageId=sandbox.info.base_ami, SourceRegion="us-east-1",
                                                        Name=f"stock-{param.split('/')[2]}")["ImageId"]
    sandbox.client("ssm", AWAY).put_parameter(Name=param, Value=away_stock, Type="String")
    info = sandbox.info
    app = fresh_image(sandbox, 2, prefix="data-volume")
    tag = uuid.uuid4().hex[:8]
    sandbox.push_image(f"{info.ecr_registry}/env/data-volume-ecr", tag, size_mb=1)
    ecr = f"{info.ecr_registry}/env/data-volume-ecr:{tag}"
    cfg = write_config(d / "bake.toml", sandbox, {
        "dv": {"base_ami": f"ssm:{param}", "images": [app, ecr], "aliases": {app: [MIRROR]}, "cache": "data-volume",
               "distribute": {"regions": [AWAY], "accounts": [SHARED_WITH]}},
        "ami": {"base_ami": f"ssm:{param}", "images": [app]},
    })
    result = run_bake("build", "--config", str(cfg), "--pool", "dv", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    entry = LockFile(d / "amis.lock.json").read().pools["dv"].current
    assert entry.base_amis == {AWAY: away_stock}
    return d, cfg, param, entry, events


def references(entry) -> list[str]:
    from bake.model.refs import parse_reference
    from bake.references import name_of

    refs = []
    for img in entry.images:
        refs += [img.ref, f"{name_of(parse_reference(img.ref))}@{img.digest}", img.image_id]
        for alias in img.aliases or []:
            refs += [alias, f"{name_of(parse_reference(alias))}@{img.digest}"]
    return refs


def test_the_bake_snapshots_the_data_volume_alone_and_registers_no_ami(sandbox, ec2, dv_bake):
    d, cfg, param, entry, events = dv_bake
    run_id = next(e["data"]["run_id"] for e in events if e.get("kind") == "pool.start")
    run_tag = [{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}]
    assert ec2.describe_images(Owners=["self"], Filters=run_tag)["Images"] == []
    [snap] = ec2.describe_snapshots(OwnerIds=["self"], Filters=run_tag)["Snapshots"]
    got = tags.from_aws(snap["Tags"])
    assert got[tags.KEY_TOOL] == tags.TOOL and got[tags.KEY_POOL] == "dv" and got[tags.KEY_ROLE] == "cache-snapshot"
    assert got[tags.KEY_FINGERPRINT] == entry.fingerprint and int(got[tags.KEY_CACHE_BYTES]) == entry.cache_bytes
    assert (entry.cache, entry.cache_snapshot_id, entry.ami_id, entry.data_device) == (
        "data-volume", snap["SnapshotId"], snap["SnapshotId"], DEVICE)
    assert entry.base_ami == sandbox.info.base_ami and entry.snapshot_ids == [snap["SnapshotId"]]
    shared = ec2.describe_snapshot_attribute(SnapshotId=snap["SnapshotId"], Attribute="createVolumePermission")
    assert shared["CreateVolumePermissions"] == [{"UserId": SHARED_WITH}]
    # The snapshot holds bytes; the builder's volume went with the builder, its loop device with it.
    assert os.path.getsize(sandbox_moto.volumes_dir(sandbox.layout) / "snapshots" / f"{snap['SnapshotId']}.img") > 0
    assert ec2.describe_volumes(Filters=run_tag)["Volumes"] == []
    [mounted] = [e for e in events if e.get("step") == "data-volume" and (e.get("data") or {}).get("volume_id")]
    assert not os.path.lexists(by_id(mounted["data"]["volume_id"]))
    assert mounted["message"].endswith("mounted at /var/lib/containerd"), mounted


def test_the_cache_snapshot_is_copied_with_its_tags_and_shared_and_a_node_there_boots_from_the_copy(sandbox, dv_bake):
    """[distribute] regions: the copy in AWAY, tagged like the original (sweep and prune find it
    there), completed, shared with the accounts; the lock names it and AWAY's stock AMI; a node
    launched there from that AMI with the copy mapped finds every image pinned without a pull."""
    d, cfg, param, entry, events = dv_bake
    away = sandbox.client("ec2", AWAY)
    [copy] = away.describe_snapshots(SnapshotIds=[entry.copies[AWAY]])["Snapshots"]
    got = tags.from_aws(copy["Tags"])
    assert (got[tags.KEY_ROLE], got[tags.KEY_POOL], got[tags.KEY_FINGERPRINT]) == ("cache-snapshot", "dv", entry.fingerprint)
    assert got[tags.KEY_SOURCE_REGION] == "us-east-1" and got[tags.KEY_SOURCE_AMI] == entry.cache_snapshot_id
    assert copy["State"] == "completed"
    shared = away.describe_snapshot_attribute(SnapshotId=copy["SnapshotId"], Attribute="createVolumePermission")
    assert shared["CreateVolumePermissions"] == [{"UserId": SHARED_WITH}]
    assert entry.ami_in(AWAY) == copy["SnapshotId"] and entry.base_ami_in(AWAY) != entry.base_ami
    boot = sandbox.first_boot_from_snapshot(copy["SnapshotId"], references(entry), region=AWAY,
                                            image_id=entry.base_ami_in(AWAY))
    assert boot.missing() == [] and boot.unpinned() == [] and boot.registry_requests == []


def test_a_node_from_the_snapshot_finds_every_reference_pinned_without_a_pull(sandbox, dv_bake):
    d, cfg, param, entry, events = dv_bake
    refs = references(entry)
    assert len(refs) == 2 * 3 + 2 and all(refs)
    boot = sandbox.first_boot_from_snapshot(entry.cache_snapshot_id, refs)
    assert boot.missing() == [] and boot.unpinned() == []
    assert boot.registry_requests == []
    assert boot.volume_label == LABEL  # what the node's mount unit finds it by (/dev/disk/by-label/)
    # Negative control: the builder's own disk (what an AMI would hold) never got the images.
    on_root = sandbox.first_boot([entry.images[0].ref, entry.images[1].ref])
    assert on_root.missing() == [entry.images[0].ref, entry.images[1].ref]


def test_a_new_stock_ami_alone_keeps_a_data_volume_cache_and_rebakes_an_ami(sandbox, dv_bake):
    d, cfg, param, entry, events = dv_bake

    def plan(pool):
        r = run_bake("plan", "--config", str(cfg), "--pool", pool, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["pools"][0]

    before = plan("ami")
    # The AMI pool as if baked on the current stock AMI: its lock entry holds the plan's fingerprint.
    LockFile(d / "amis.lock.json").update("ami", lambda old: old.promoted(entry.model_copy(update={
        "ami_id": sandbox.info.base_ami, "fingerprint": before["fingerprint"], "cache": "ami",
        "cache_snapshot_id": None, "data_device": None})))
    assert (plan("dv")["action"], plan("ami")["action"]) == ("skip", "skip")
    newer = bake_ami(sandbox, f"eks-node-newer-{uuid.uuid4().hex[:6]}")  # AWS publishes a new EKS AMI
    sandbox.client("ssm").put_parameter(Name=param, Value=newer, Type="String", Overwrite=True)
    dv, ami = plan("dv"), plan("ami")
    assert (dv["action"], dv["base_ami"], dv["fingerprint"]) == ("skip", newer, entry.fingerprint)
    assert (ami["action"], ami["base_ami"]) == ("bake", newer)
    # The pipeline's gate agrees: the data-volume pool is current, the AMI pool is not (exit 4).
    assert run_bake("plan", "--config", str(cfg), "--pool", "dv", "--check").returncode == 0
    assert run_bake("plan", "--config", str(cfg), "--pool", "ami", "--check").returncode == 4


def test_a_failed_data_volume_bake_leaves_no_volume_snapshot_or_mount(sandbox, ec2, dv_bake, tmp_path):
    """The builder booted with containerd running: the mount is refused (the runtime's root would
    change under it), and the undo leaves the builder's own disk mounted as it was."""
    d, cfg, param, entry, events = dv_bake
    mounts_before = in_builder(sandbox, "findmnt -rno SOURCE --mountpoint /var/lib/containerd")
    sandbox.node_containerd(boot="running")
    try:
        cfg2 = write_config(tmp_path / "bake.toml", sandbox, {
            "dv2": {"images": [entry.images[0].ref], "cache": "data-volume"}})
        result = run_bake("build", "--config", str(cfg2), "--json")
    finally:
        sandbox.node_containerd(boot="stopped")
    assert result.returncode == 1, result.stderr
    fail = [json.loads(line) for line in result.stdout.splitlines() if json.loads(line).get("kind") == "pool.fail"]
    assert fail and "containerd is running: the data volume is mounted at /var/lib/containerd before it starts" in \
        fail[0]["message"]
    run_id = next(json.loads(line)["data"]["run_id"] for line in result.stdout.splitlines()
                  if json.loads(line).get("kind") == "pool.start")
    run_tag = [{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}]
    assert ec2.describe_volumes(Filters=run_tag)["Volumes"] == []
    assert ec2.describe_snapshots(OwnerIds=["self"], Filters=run_tag)["Snapshots"] == []
    assert in_builder(sandbox, "findmnt -rno SOURCE --mountpoint /var/lib/containerd") == mounts_before
    assert not (tmp_path / "amis.lock.json").exists()


def test_a_copy_region_without_the_base_parameter_is_refused_before_anything_is_launched(sandbox, ec2, tmp_path):
    param = f"/bake-test/{uuid.uuid4().hex[:8]}/image_id"  # in us-east-1 only
    sandbox.client("ssm").put_parameter(Name=param, Value=sandbox.info.base_ami, Type="String")
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"dv": {
        "base_ami": f"ssm:{param}", "images": [fresh_image(sandbox, 1, prefix="data-volume-away")],
        "cache": "data-volume", "distribute": {"regions": [AWAY]}}})
    before = len(ec2.describe_instances()["Reservations"])
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 2, result.stderr
    assert f"SSM parameter {param} does not exist" in result.stderr and f"in {AWAY}" in result.stderr, result.stderr
    assert len(ec2.describe_instances()["Reservations"]) == before and not (tmp_path / "amis.lock.json").exists()
