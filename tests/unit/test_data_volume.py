"""A cache = "data-volume" pool's pure parts (issue 24): its fingerprint, its steps, the builder's
mapping and mount script, and the node's user data and launch props."""

from __future__ import annotations

from email import message_from_string

import pytest

from bake.build import steps_for
from bake.data_volume import DEVICE, by_id, launch_mapping, mount_script
from bake.errors import UsageError
from bake.fingerprint import pool_fingerprint
from bake.model.config import PoolConfig
from bake.model.lock import ImageDigest, LockEntry, LockFile
from bake.model.rollout import PoolRollout
from nodepools.props import pool_props
from bake.node_user_data import with_cache_mount

IMAGES = [("quay.io/org/env:rev9", "sha256:" + "1" * 64)]
NODECONFIG = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec: {}\n"


def pool(**kw) -> PoolConfig:
    return PoolConfig(**{"name": "cpu", "base_ami": "ssm:/aws/service/eks/x", "images": [r for r, _ in IMAGES],
                         "cache": "data-volume", **kw})


def test_a_new_stock_ami_keeps_a_data_volume_fingerprint_and_changes_an_ami_one():
    assert pool_fingerprint(pool(), "ami-0aaa", IMAGES) == pool_fingerprint(pool(), "ami-0bbb", IMAGES)
    ami = pool(cache="ami")
    assert pool_fingerprint(ami, "ami-0aaa", IMAGES) != pool_fingerprint(ami, "ami-0bbb", IMAGES)


@pytest.mark.parametrize("kw", [{"arch": "arm64"}, {"os": "bottlerocket"}], ids=["architecture", "os"])
def test_what_the_node_must_match_still_changes_a_data_volume_fingerprint(kw):
    arch = kw.pop("arch", "amd64")
    assert pool_fingerprint(pool(**kw), "ami-0aaa", IMAGES, arch=arch) != pool_fingerprint(pool(), "ami-0aaa", IMAGES)


def test_the_steps_snapshot_the_volume_instead_of_registering_an_ami(tmp_path):
    names = [s.name for s in steps_for(pool(), LockFile(tmp_path / "l.json"))]
    assert names.index("data-volume") < names.index("runtime") and "cache-snapshot" in names
    assert not {"scrub", "ami", "copies", "share"} & set(names)
    assert names[-4:] == ["cache-snapshot", "cache-copies", "cache-share", "lock"]


def test_the_data_volume_is_sized_from_the_images_alone():
    from bake.disk import GIB, builder_disk

    disk = builder_disk(0, [GIB], volume="data")
    assert disk.gib == 9 and disk.as_dict()["volume"] == "data"  # 1 GiB x 7 + 15% headroom, rounded up
    assert disk.reason.startswith("data volume: 1 image(s)") and "base AMI" in disk.reason


def test_the_builder_launches_with_the_volume_and_mounts_it_by_its_id():
    m = launch_mapping(7, "gp3", "alias/k")
    assert m == {"DeviceName": DEVICE, "Ebs": {"VolumeSize": 7, "VolumeType": "gp3", "DeleteOnTermination": True,
                                               "Encrypted": True, "KmsKeyId": "alias/k"}}
    script = mount_script("vol-0abc", "/var/lib/containerd", "containerd")
    assert by_id("vol-0abc") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc" and by_id("vol-0abc") in script
    assert "mkfs.ext4" in script and 'mount "$dev" /var/lib/containerd' in script


def parts(doc: str) -> list[tuple[str, str]]:
    return [(p.get_content_type(), p.get_payload()) for p in message_from_string(doc).get_payload()]


@pytest.mark.parametrize("own, kind", [(NODECONFIG, "application/node.eks.aws"), ("#!/bin/sh\necho hi\n", "text/x-shellscript"),
                                       ("#cloud-config\nruncmd: []\n", "text/cloud-config")])
def test_plain_user_data_becomes_the_first_part_beside_the_mount(own, kind):
    got = parts(with_cache_mount(own, "cpu"))
    assert [k for k, _ in got] == [kind, "text/x-shellscript"]
    assert got[0][1].strip() == own.strip() and "Where=/var/lib/containerd" in got[1][1]


def test_mime_user_data_gains_one_part_before_its_closing_boundary():
    own = ('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: application/node.eks.aws\n\n'
           f"{NODECONFIG}\n--B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntrue\n\n--B--\n")
    got = parts(with_cache_mount(own, "cpu"))
    assert [k for k, _ in got] == ["application/node.eks.aws", "text/x-shellscript", "text/x-shellscript"]
    assert "bake-cache" in got[2][1]
    assert with_cache_mount(own, "cpu") == with_cache_mount(own, "cpu")  # deterministic: no random boundary


def test_user_data_of_unknown_kind_is_refused_naming_the_pool():
    with pytest.raises(UsageError, match="pool 'cpu'.*neither a NodeConfig"):
        with_cache_mount("[settings.kubernetes]\n", "cpu")


def entry() -> LockEntry:
    return LockEntry(ami_id="snap-0c", region="us-east-1", fingerprint="f", base_ami="ami-stock",
                     images=[ImageDigest(ref=IMAGES[0][0], digest=IMAGES[0][1])], built_at="2026-12-07T00:00:00Z",
                     snapshot_ids=["snap-0c"], snapshot_gib=5, cache="data-volume", cache_snapshot_id="snap-0c",
                     data_device=DEVICE)


@pytest.mark.parametrize("os_", ["al2023", "bottlerocket"])
def test_node_props_map_the_snapshot_on_the_stock_ami(os_):
    user = NODECONFIG if os_ == "al2023" else "[settings.kubernetes]\n"
    props = pool_props(pool(os=os_), PoolRollout(asg={"availability_zones": ["us-east-1a"]},
                                                   launch_template={"user_data": user, "volume_initialization_rate": 200}),
                       entry(), "us-east-1", None)
    assert props.ami_id == "ami-stock"
    [cache] = [d for d in props.instance.block_devices if d.device_name == DEVICE]
    assert (cache.snapshot_id, cache.volume_size, cache.delete_on_termination) == ("snap-0c", 5, True)
    assert props.instance.volume_initialization_rate == 200
    if os_ == "bottlerocket":
        assert props.instance.user_data == user  # its data volume is the snapshot itself
    else:
        assert [k for k, _ in parts(props.instance.user_data)] == ["application/node.eks.aws", "text/x-shellscript"]


def test_fast_snapshot_restore_applies_to_the_cache_snapshot():
    props = pool_props(pool(), PoolRollout(asg={"availability_zones": ["us-east-1a"]}, launch_template={"user_data": NODECONFIG},
                                           fast_snapshot_restore={"availability_zones": ["us-east-1a", "us-east-1b"]}),
                       entry(), "us-east-1", None)
    assert props.snapshot_ids == ("snap-0c",) and props.fast_snapshot_restore_zones == ("us-east-1a", "us-east-1b")


@pytest.mark.parametrize("kw, why", [
    ({"runtime": "docker"}, 'needs runtime = "containerd"'),
    ({"os": "al2"}, 'needs runtime = "containerd" on os = "al2023" or "bottlerocket"'),
    ({"base_ami": "ami-0abc1234", "distribute": {"regions": ["eu-west-1"]}}, 'regions needs base_ami = "ssm:PARAMETER"'),
    ({"distribute": {"organizations": ["arn:aws:organizations::111122223333:organization/o-abcdefghij"]}},
     "shares a snapshot with accounts only"),
], ids=["docker", "al2", "copies-of-one-regions-ami", "organizations"])
def test_a_data_volume_pool_refuses_what_it_cannot_do(kw, why):
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        pool(**kw)


def test_a_data_volume_pool_may_share_its_snapshot_with_accounts():
    assert pool(distribute={"accounts": ["111122223333"]}).distribute.accounts == ["111122223333"]


def test_a_data_volume_pool_with_an_ssm_base_may_copy_its_snapshot_to_other_regions():
    assert pool(distribute={"regions": ["eu-west-1"]}).distribute.regions == ["eu-west-1"]


def copied_entry() -> LockEntry:
    return entry().model_copy(update={"copies": {"eu-west-1": "snap-0eu"}, "base_amis": {"eu-west-1": "ami-stock-eu"}})


def test_nodes_in_a_copy_region_launch_that_regions_stock_ami_with_the_copy():
    rollout = PoolRollout(asg={"availability_zones": ["eu-west-1a"]}, node_region="eu-west-1",
                          launch_template={"user_data": NODECONFIG},
                          fast_snapshot_restore={"availability_zones": ["eu-west-1a"]})
    props = pool_props(pool(distribute={"regions": ["eu-west-1"]}), rollout, copied_entry(), "us-east-1", None)
    assert (props.ami_id, props.region, props.snapshot_ids) == ("ami-stock-eu", "eu-west-1", ("snap-0eu",))
    [cache] = [d for d in props.instance.block_devices if d.device_name == DEVICE]
    assert cache.snapshot_id == "snap-0eu"
    home = pool_props(pool(), PoolRollout(asg={"availability_zones": ["us-east-1a"]}, launch_template={"user_data": NODECONFIG}),
                      copied_entry(), "us-east-1", None)
    assert (home.ami_id, home.region) == ("ami-stock", None)


def test_a_region_without_a_copy_is_refused_naming_the_fix():
    from nodepools.props import MissingAmiError

    rollout = PoolRollout(asg={"availability_zones": ["eu-west-1a"]}, node_region="eu-west-1",
                          launch_template={"user_data": NODECONFIG})
    with pytest.raises(MissingAmiError, match=r"no cache snapshot in eu-west-1.*distribute\] regions"):
        pool_props(pool(distribute={"regions": ["eu-west-1"]}), rollout, entry(), "us-east-1", None)


def test_a_copy_only_run_adds_the_copy_and_its_stock_ami_to_the_current_entry(tmp_path):
    from bake.steps.record import record

    lock = LockFile(tmp_path / "amis.lock.json")
    record(lock, "cpu", entry())
    record(lock, "cpu", copied_entry().model_copy(update={"built_at": "2026-12-08T00:00:00Z"}))
    current = lock.read().pools["cpu"].current
    assert (current.copies, current.base_amis, current.built_at) == (
        {"eu-west-1": "snap-0eu"}, {"eu-west-1": "ami-stock-eu"}, "2026-12-07T00:00:00Z")
    assert current.base_ami_in("eu-west-1") == "ami-stock-eu" and current.base_ami_in("us-east-1") == "ami-stock"
    assert current.base_ami_in("ap-south-1") is None
