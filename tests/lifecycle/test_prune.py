"""``bake prune`` against a moto server: what goes, what stays and why."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from bake.lifecycle.prune import plan_prune
from bake.model.lock import LockData, LockFile, PoolLock
from lifecycle_helpers import bake_ami, iso, lock_entry
from support.cli import run_bake

DAY = 86400


def _exists_image(ec2: object, ami: str) -> bool:
    imgs = ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [ami]}])["Images"]  # type: ignore[attr-defined]
    return any(i["ImageId"] == ami and i.get("State") != "deregistered" for i in imgs)


def _exists_snapshot(ec2: object, snap: str) -> bool:
    try:
        return bool(ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"])  # type: ignore[attr-defined]
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
        return False


@pytest.fixture
def account(moto_server_aws: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """Pool general: a0..a7, one a day (a7 newest). Lock: current a1, history [a7, a6, a5, a2].
    a0 is in a launch template version made outside any stack; a3 runs on an instance.
    Pool gpu: g0..g3, g0 used by a launch configuration."""
    ec2 = moto_server_aws.ec2
    a = [bake_ami(ec2, "general", iso((8 - i) * DAY)) for i in range(8)]
    g = [bake_ami(ec2, "gpu", iso((4 - i) * DAY)) for i in range(4)]
    ids = [x[0] for x in a]
    ec2.create_launch_template(LaunchTemplateName="hand-made", LaunchTemplateData={"ImageId": "ami-ekslinux"})
    ec2.create_launch_template_version(LaunchTemplateName="hand-made", LaunchTemplateData={"ImageId": ids[0]})
    ec2.create_launch_template_version(LaunchTemplateName="hand-made", LaunchTemplateData={"ImageId": "ami-ekslinux"})
    ec2.run_instances(ImageId=ids[3], MinCount=1, MaxCount=1, InstanceType="t3.micro")
    moto_server_aws.autoscaling.create_launch_configuration(LaunchConfigurationName="legacy-gpu", ImageId=g[0][0], InstanceType="t3.micro")

    lock = LockFile(tmp_path / "amis.lock.json")
    lock.update("general", lambda _: PoolLock(current=lock_entry(ids[1]), history=[lock_entry(ids[i]) for i in (7, 6, 5, 2)]))
    lock.update("gpu", lambda _: PoolLock(current=lock_entry(g[3][0])))
    return SimpleNamespace(ec2=ec2, a=a, g=g, ids=ids, lock=lock.path)


def _row(out: str, ami: str) -> str:
    return next(line for line in out.splitlines() if ami in line)


def test_dry_run_lists_and_changes_nothing(account: SimpleNamespace, tmp_path: Path) -> None:
    r = run_bake("prune", "--lock", str(account.lock), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ids = account.ids
    assert " remove " in _row(r.stdout, ids[2]) and " remove " in _row(r.stdout, ids[4])
    assert "launch template hand-made v2" in _row(r.stdout, ids[0])
    assert "lock: current of general" in _row(r.stdout, ids[1])
    assert "instance i-" in _row(r.stdout, ids[3])
    for i in (5, 6, 7):
        assert "newest" in _row(r.stdout, ids[i]) and " keep " in _row(r.stdout, ids[i])
    assert "launch configuration legacy-gpu" in _row(r.stdout, account.g[0][0])
    assert "would deregister 2 AMI(s) and delete 2 snapshot(s)" in r.stdout
    for ami, snaps in account.a + account.g:
        assert _exists_image(account.ec2, ami)
        assert all(_exists_snapshot(account.ec2, s) for s in snaps)


def test_yes_removes_old_unused_amis_and_their_snapshots(account: SimpleNamespace, tmp_path: Path) -> None:
    r = run_bake("prune", "--yes", "--lock", str(account.lock), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    removed = {2, 4}
    for i, (ami, snaps) in enumerate(account.a):
        assert _exists_image(account.ec2, ami) == (i not in removed), (i, ami)
        assert all(_exists_snapshot(account.ec2, s) == (i not in removed) for s in snaps)
    for ami, snaps in account.g:
        assert _exists_image(account.ec2, ami) and all(_exists_snapshot(account.ec2, s) for s in snaps)
    again = run_bake("prune", "--lock", str(account.lock), cwd=tmp_path)
    assert again.returncode == 0 and "would deregister 0 AMI(s)" in again.stdout


def test_keep_and_pool_flags(account: SimpleNamespace, tmp_path: Path) -> None:
    r = run_bake("prune", "--keep", "1", "--pool", "gpu", "--yes", "--lock", str(account.lock), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "general" not in r.stdout
    g = [x[0] for x in account.g]
    assert [_exists_image(account.ec2, x) for x in g] == [True, False, False, True]  # LC, -, -, newest+current
    assert all(_exists_image(account.ec2, x) for x in account.ids)
    bad = run_bake("prune", "--pool", "nope", "--lock", str(account.lock), cwd=tmp_path)
    assert bad.returncode == 2 and "no pool named 'nope'" in bad.stderr


def test_missing_lock_warns_and_still_keeps_what_is_in_use(account: SimpleNamespace, tmp_path: Path) -> None:
    r = run_bake("prune", "--lock", str(tmp_path / "absent.json"), cwd=tmp_path)
    assert r.returncode == 0
    assert "no AMI is protected by the lock" in r.stderr
    assert " remove " in _row(r.stdout, account.ids[1])  # no lock: the old current is fair game
    assert " keep " in _row(r.stdout, account.ids[0]) and " keep " in _row(r.stdout, account.ids[3])


def _img(ami: str, pool: str, created: str, state: str = "available") -> dict:
    return {
        "ImageId": ami, "State": state, "Name": ami, "CreationDate": created,
        "Tags": [{"Key": "bake:tool", "Value": "eks-image-bake"}, {"Key": "bake:pool", "Value": pool},
                 {"Key": "bake:role", "Value": "ami"}, {"Key": "bake:created-at", "Value": created}],
    }


def test_plan_is_pure_and_conservative() -> None:
    imgs = [_img(f"ami-{i:08d}", "p", f"2025-01-0{i + 1}T00:00:00Z") for i in range(6)]
    imgs[0]["State"] = "pending"
    foreign = {**_img("ami-99999999", "p", "2020-01-01T00:00:00Z"), "Tags": [{"Key": "bake:pool", "Value": "p"}]}
    pinned = LockData(pools={"p": PoolLock(current=lock_entry("ami-00000005"))})
    pinned.pools["other"] = PoolLock(current=lock_entry("ami-00000001"))
    plan = plan_prune([*imgs, foreign], pinned, {}, keep=2)
    assert [c.ami_id for c in plan.removals] == ["ami-00000003", "ami-00000002"]
    why = {c.ami_id: c.why for c in plan.candidates}
    assert "ami-99999999" not in why  # not tagged by the tool
    assert "state pending" in why["ami-00000000"]
    assert "current of other" in why["ami-00000001"]
    assert not plan_prune(imgs, pinned, {}, keep=10).removals


def _copy(ec2_away: object, ami: str, created: str) -> tuple[str, list[str]]:
    """A copy made the way a bake makes one: CopyImage, then the original's tags plus its source."""
    import boto3

    from bake import tags

    source = boto3.client("ec2", region_name="us-east-1").describe_images(ImageIds=[ami])["Images"][0]
    copy = ec2_away.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=source["Name"])["ImageId"]  # type: ignore[attr-defined]
    t = {**tags.from_aws(source["Tags"]), tags.KEY_CREATED: created, tags.KEY_SOURCE_AMI: ami,
         tags.KEY_SOURCE_REGION: "us-east-1"}
    ec2_away.create_tags(Resources=[copy], Tags=tags.as_aws(t))  # type: ignore[attr-defined]
    image = ec2_away.describe_images(ImageIds=[copy])["Images"][0]  # type: ignore[attr-defined]
    return copy, [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if "Ebs" in m]


def test_prune_goes_region_by_region_and_keeps_the_copies_the_lock_names(moto_server_aws: SimpleNamespace, tmp_path: Path) -> None:
    """general: a0..a3 in us-east-1 (a3 newest), each copied to eu-west-1 (c0..c3). The lock:
    current a2 (+ c2), history [a1 (+ c1)]. With --keep 1, a3 and c3 are the newest; a0, c0 go."""
    import boto3

    from lifecycle_helpers import lock_entry

    eu = boto3.client("ec2", region_name="eu-west-1")
    a = [bake_ami(moto_server_aws.ec2, "general", iso((4 - i) * DAY)) for i in range(4)]
    c = [_copy(eu, ami, iso((4 - i) * DAY)) for i, (ami, _) in enumerate(a)]
    entry = lambda i: lock_entry(a[i][0]).model_copy(update={"copies": {"eu-west-1": c[i][0]}})  # noqa: E731
    lock = LockFile(tmp_path / "amis.lock.json")
    lock.update("general", lambda _: PoolLock(current=entry(2), history=[entry(1)]))
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.general]\nbase_ami = "ami-ekslinux"\nimages = ["nginx:1.27"]\n'
                   '[pools.general.distribute]\nregions = ["eu-west-1"]\n')

    dry = run_bake("prune", "--keep", "1", "--config", str(cfg), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    home, away = dry.stdout.split("== eu-west-1")
    assert "== us-east-1" in home and c[0][0] not in home and a[0][0] not in away
    assert "lock: current of general" in _row(away, c[2][0]) and "lock: history #1" in _row(away, c[1][0])
    assert " remove " in _row(away, c[0][0]) and " remove " in _row(home, a[0][0])

    only_home = run_bake("prune", "--keep", "1", "--yes", "--region", "us-east-1", "--config", str(cfg), cwd=tmp_path)
    assert only_home.returncode == 0, only_home.stderr
    assert not _exists_image(moto_server_aws.ec2, a[0][0]) and _exists_image(eu, c[0][0])

    r = run_bake("prune", "--keep", "1", "--yes", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [_exists_image(eu, x) for x, _ in c] == [False, True, True, True]
    assert not any(_exists_snapshot(eu, s) for s in c[0][1]) and all(_exists_snapshot(eu, s) for s in c[1][1])
    assert [_exists_image(moto_server_aws.ec2, x) for x, _ in a] == [False, True, True, True]


def test_a_data_volume_pools_old_cache_snapshots_go_as_old_amis_do(moto_server_aws: SimpleNamespace, tmp_path: Path) -> None:
    """Cache snapshots c0..c4 (c4 newest): c4 is the lock's current, c0 mapped by a launch
    template version; with --keep 1 the three between are deleted, no AMI is touched."""
    from bake import tags

    ec2 = moto_server_aws.ec2
    snaps = []
    for i in range(5):
        vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=2)["VolumeId"]
        snaps.append(ec2.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags.as_aws(
            tags.run_tags(f"run-cache-{i}", "cache", "cache-snapshot", iso((5 - i) * DAY)))}])["SnapshotId"])
        ec2.delete_volume(VolumeId=vol)
    ec2.create_launch_template(LaunchTemplateName="cache-nodes", LaunchTemplateData={
        "ImageId": "ami-ekslinux", "BlockDeviceMappings": [{"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": snaps[0]}}]})
    lock = LockFile(tmp_path / "amis.lock.json")
    lock.update("cache", lambda _: PoolLock(current=lock_entry(snaps[4]).model_copy(update={
        "cache": "data-volume", "cache_snapshot_id": snaps[4], "data_device": "/dev/xvdb"})))
    dry = run_bake("prune", "--keep", "1", "--pool", "cache", "--lock", str(lock.path), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "launch template cache-nodes v1" in _row(dry.stdout, snaps[0])
    assert "lock: current of cache" in _row(dry.stdout, snaps[4])
    assert all(" remove " in _row(dry.stdout, s) for s in snaps[1:4])
    wet = run_bake("prune", "--keep", "1", "--pool", "cache", "--yes", "--lock", str(lock.path), cwd=tmp_path)
    assert wet.returncode == 0, wet.stdout + wet.stderr
    assert [_exists_snapshot(ec2, s) for s in snaps] == [True, False, False, False, True]
