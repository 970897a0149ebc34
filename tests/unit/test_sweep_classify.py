"""sweep's decision without AWS (bake.lifecycle.sweep.classify): what ``read_inventory`` found,
sorted into leftovers, fresh runs and keepers. tests/lifecycle/test_sweep.py runs the reads and
the removal against the sandbox's moto."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bake import tags
from bake.aws.images import Image
from bake.lifecycle.sweep import KINDS, Inventory, classify

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
OLD, NEW = "2026-12-07T06:00:00Z", "2026-12-07T11:30:00Z"  # 6 h and 30 min before NOW
TWO_HOURS = timedelta(hours=2)


def _tags(run: str, created: str, role: str = "ami", **extra: str) -> list[dict[str, str]]:
    return tags.as_aws(tags.run_tags(run, "p", role, created, extra))


def _image(ami: str, state: str, tag_list: list[dict[str, str]], snap: str) -> Image:
    return Image({"ImageId": ami, "State": state, "Tags": tag_list,
                  "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}]})


def _run(run: str, created: str, **extra: str) -> dict[str, list]:
    """A killed bake's instance, group and key pair."""
    return {
        "instances": [{"InstanceId": f"i-{run}", "State": {"Name": "running"}, "Tags": _tags(run, created, "builder", **extra)}],
        "security_groups": [{"GroupId": f"sg-{run}", "GroupName": f"bake-{run}", "Tags": _tags(run, created, "security-group", **extra)}],
        "key_pairs": [{"KeyPairId": f"key-{run}", "KeyName": f"bake-{run}", "Tags": _tags(run, created, "key-pair")}],
    }


def _inventory(*runs: dict[str, list], images: list[Image] = (), snapshots: list[dict] = ()) -> Inventory:  # type: ignore[assignment]
    inv = Inventory(images=list(images), snapshots=list(snapshots))
    for run in runs:
        inv.instances += run["instances"]
        inv.security_groups += run["security_groups"]
        inv.key_pairs += run["key_pairs"]
    return inv


def test_an_old_run_is_a_leftover_in_removal_order_and_a_fresh_one_is_left_alone():
    plan = classify(_inventory(_run("old", OLD), _run("new", NEW)), TWO_HOURS, {}, NOW)
    assert [(r.kind, r.id) for r in plan.leftovers] == [
        ("instance", "i-old"), ("security-group", "sg-old"), ("key-pair", "key-old")]
    assert {r.id for r in plan.fresh} == {"i-new", "sg-new", "key-new"}
    assert plan.now == NOW and plan.kept == []


def test_a_run_with_one_fresh_resource_is_left_alone_whole():
    run = _run("busy", OLD)
    run["key_pairs"][0]["Tags"] = _tags("busy", NEW, "key-pair")  # made just now: the bake is still running
    plan = classify(_inventory(run), TWO_HOURS, {}, NOW)
    assert plan.leftovers == [] and len(plan.fresh) == 3


def test_a_kept_run_goes_whatever_its_age():
    plan = classify(_inventory(_run("kept", NEW, **{tags.KEY_KEPT: NEW})), TWO_HOURS, {}, NOW)
    assert {r.id for r in plan.leftovers} == {"i-kept", "sg-kept", "key-kept"} and plan.fresh == []


def test_amis_unfinished_go_with_their_snapshots_finished_locked_and_foreign_ones_stay():
    images = [
        _image("ami-pending", "pending", _tags("r1", OLD), "snap-p"),
        _image("ami-good", "available", _tags("r2", OLD), "snap-g"),
        _image("ami-locked", "failed", _tags("r3", OLD), "snap-l"),
        _image("ami-fresh", "pending", _tags("r4", NEW), "snap-f"),
        _image("ami-foreign", "failed", [], "snap-x"),  # not the tool's: never touched
    ]
    snapshots = [
        {"SnapshotId": "snap-g", "Tags": _tags("r2", OLD)},  # backs a good AMI
        {"SnapshotId": "snap-o", "Tags": _tags("r5", OLD)},  # backs nothing: an orphan
        {"SnapshotId": "snap-n", "Tags": _tags("r4", NEW)},  # a running bake's
    ]
    plan = classify(_inventory(images=images, snapshots=snapshots), TWO_HOURS, {"ami-locked": "p current"}, NOW)
    assert [(r.kind, r.id) for r in plan.leftovers] == [
        ("image", "ami-pending"), ("snapshot", "snap-o"), ("snapshot", "snap-p")]
    assert [r.kind for r in plan.leftovers] == sorted((r.kind for r in plan.leftovers), key=KINDS.index)
    assert {r.id for r in plan.fresh} == {"ami-fresh", "snap-n"}
    kept = {r.id: why for r, why in plan.kept}
    assert kept == {"ami-good": "available: a finished build; retire it with `bake prune`",
                    "ami-locked": "in the lock (p current)", "snap-g": "backs ami-good"}
    behind = next(r for r in plan.leftovers if r.id == "snap-p")
    assert (behind.run_id, behind.name) == ("r1", "of ami-pending")  # an untagged snapshot goes with its AMI's run


def test_a_snapshot_backing_a_foreign_ami_stays():
    images = [_image("ami-foreign", "available", [], "snap-shared")]
    plan = classify(_inventory(images=images, snapshots=[{"SnapshotId": "snap-shared", "Tags": _tags("r1", OLD)}]),
                    TWO_HOURS, {}, NOW)
    assert plan.leftovers == [] and [why for _, why in plan.kept] == ["backs ami-foreign"]
