"""Each step and its undo, against moto in-process (unit level; the end-to-end tests use the
moto server, a real sshd and real runtimes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bake import tags
from bake.disk import DiskPlan
from bake.errors import BakeError, Cancelled
from bake.model.config import PoolConfig
from bake.steps.ami import StepCreateAmi, ami_tags
from bake.steps.base import BuildState, run_steps
from bake.steps.instance import StepRunInstance
from bake.steps.keypair import StepKeyPair
from bake.steps.security_group import StepSecurityGroup
from support.states import plan_for, state_for


def state(ec2, images=(), ec2_in=None, **pool_kw) -> BuildState:
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], ssh_cidrs=["203.0.113.7/32"], **pool_kw)
    return state_for(plan_for(pool, images), ec2, **({"ec2_in": ec2_in} if ec2_in else {}))


def live_instances(ec2):
    res = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in res["Reservations"] for i in r["Instances"]]


def test_key_pair_is_ed25519_tagged_and_undone(in_process_ec2):
    st = state(in_process_ec2)
    StepKeyPair().run(st)
    kp = in_process_ec2.describe_key_pairs(KeyNames=[st.key_name], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["PublicKey"].startswith("ssh-ed25519 ")
    assert tags.from_aws(kp["Tags"])[tags.KEY_RUN] == st.run.id
    assert st.private_key.get_name() == "ssh-ed25519"
    StepKeyPair().cleanup(st)
    assert in_process_ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [st.key_name]}])["KeyPairs"] == []
    StepKeyPair().cleanup(st)  # tolerant of what is already gone


def test_security_group_admits_only_configured_cidrs(in_process_ec2):
    st = state(in_process_ec2)
    StepSecurityGroup().run(st)
    sg = in_process_ec2.describe_security_groups(GroupIds=[st.security_group_id])["SecurityGroups"][0]
    perms = sg["IpPermissions"]
    assert len(perms) == 1 and perms[0]["FromPort"] == 22 and perms[0]["ToPort"] == 22
    assert [r["CidrIp"] for r in perms[0]["IpRanges"]] == ["203.0.113.7/32"]
    StepSecurityGroup().cleanup(st)
    assert not in_process_ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [st.security_group_id]}])["SecurityGroups"]


def test_instance_requires_imdsv2_and_is_terminated(in_process_ec2):
    st = state(in_process_ec2, root_volume_size=120)
    StepKeyPair().run(st)
    StepSecurityGroup().run(st)
    StepRunInstance().run(st)
    inst = in_process_ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["KeyName"] == st.key_name
    assert tags.from_aws(inst["Tags"])[tags.KEY_ROLE] == "builder"
    root = next(m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"])
    volume = in_process_ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["Size"] == 120
    StepRunInstance().cleanup(st)
    assert live_instances(in_process_ec2) == []


def test_ami_deregistered_with_snapshots_unless_succeeded(in_process_ec2):
    st = state(in_process_ec2)
    st.instance_id = in_process_ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    StepCreateAmi().run(st)
    image = in_process_ec2.describe_images(ImageIds=[st.record.ami_id])["Images"][0]
    t = tags.from_aws(image["Tags"])
    assert t[tags.KEY_FINGERPRINT] == "sha256:f" and t[tags.KEY_BASE_AMI] == "ami-ekslinux"
    assert st.record.snapshot_ids
    StepCreateAmi().cleanup(st)  # not succeeded: undo
    assert in_process_ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [st.record.ami_id]}])["Images"] == []
    snaps = in_process_ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert not set(st.record.snapshot_ids) & {s["SnapshotId"] for s in snaps}


def test_ami_kept_when_succeeded(in_process_ec2):
    st = state(in_process_ec2)
    st.instance_id = in_process_ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    StepCreateAmi().run(st)
    st.succeeded = True
    StepCreateAmi().cleanup(st)
    assert in_process_ec2.describe_images(ImageIds=[st.record.ami_id])["Images"][0]["State"] == "available"


def test_ami_tags_stay_within_aws_limits(in_process_ec2):
    from bake.model.refs import parse_reference
    from bake.model.images import ResolvedImage

    st = state(in_process_ec2, [ResolvedImage(parse_reference(f"quay.io/org/img-{i}:v1"), "sha256:" + "c" * 64, None)
                                for i in range(80)])
    t = ami_tags(st)
    assert len(t) <= tags.TAGS_MAX and all(len(v) <= 256 for v in t.values())


class Recorder:
    def __init__(self, name, log, fail=False):
        self.name, self.title, self.log, self.fail = name, name, log, fail

    def run(self, st):
        self.log.append(f"run {self.name}")
        if self.fail:
            raise BakeError(f"{self.name} broke")

    def cleanup(self, st):
        self.log.append(f"undo {self.name}")


def test_runner_undoes_last_in_first_out_including_the_failed_step(in_process_ec2):
    log: list[str] = []
    steps = [Recorder("a", log), Recorder("b", log), Recorder("c", log, fail=True), Recorder("d", log)]
    with pytest.raises(BakeError, match="c broke"):
        run_steps(steps, state(in_process_ec2))
    assert log == ["run a", "run b", "run c", "undo c", "undo b", "undo a"]


def test_runner_undoes_on_cancel_and_reports_cleanup_failures(in_process_ec2):
    log: list[str] = []
    st = state(in_process_ec2)

    class CancelDuring(Recorder):
        def run(self, st_):
            super().run(st_)
            st_.run.cancel.cancel(15)
            st_.run.cancel.check()

    class BrokenUndo(Recorder):
        def cleanup(self, st_):
            raise RuntimeError("AWS said no")

    with pytest.raises(Cancelled) as e:
        run_steps([BrokenUndo("a", log), CancelDuring("b", log), Recorder("c", log)], st)
    assert e.value.exit_code == 143
    assert log == ["run a", "run b", "undo b"]
    assert st.cleanup_errors == ["a: AWS said no"]


def distributing_state(ec2, **distribute) -> BuildState:
    import boto3

    from bake.model.config import Distribution

    st = state(ec2, ec2_in=lambda region: ec2 if region == "us-east-1" else boto3.client("ec2", region_name=region),
               distribute=Distribution(**distribute))
    st.instance_id = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    StepCreateAmi().run(st)
    return st


def test_copies_are_tagged_like_the_original_and_undone_in_their_regions(ec2):
    from bake.steps.distribute import StepCopyAmi

    st = distributing_state(ec2, regions=["us-east-1", "eu-west-1", "us-west-2"])
    StepCopyAmi().run(st)
    assert set(st.record.copies) == {"eu-west-1", "us-west-2"} == set(st.started_copies)  # us-east-1 is the original
    for region, ami in st.record.copies.items():
        image = st.run.ec2_in(region).describe_images(ImageIds=[ami])["Images"][0]
        t = tags.from_aws(image["Tags"])
        assert t[tags.KEY_FINGERPRINT] == "sha256:f" and t[tags.KEY_SOURCE_AMI] == st.record.ami_id
        assert t[tags.KEY_SOURCE_REGION] == "us-east-1" and t[tags.KEY_RUN] == st.run.id
    StepCopyAmi().cleanup(st)  # not succeeded: every copy goes
    for region, ami in st.record.copies.items():
        assert st.run.ec2_in(region).describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [ami]}])["Images"] == []


def test_only_the_copies_this_run_started_are_undone(ec2):
    from bake.steps.distribute import StepCopyAmi

    st = distributing_state(ec2, regions=["eu-west-1", "us-west-2"])
    earlier = st.run.ec2_in("eu-west-1").copy_image(SourceImageId=st.record.ami_id, SourceRegion="us-east-1", Name="earlier")["ImageId"]
    st.record.copies = {"eu-west-1": earlier}  # what the lock already names
    StepCopyAmi().run(st)
    assert list(st.started_copies) == ["us-west-2"]
    StepCopyAmi().cleanup(st)
    assert st.run.ec2_in("eu-west-1").describe_images(ImageIds=[earlier])["Images"][0]["State"] == "available"


def test_copy_tags_make_room_for_the_source_within_aws_limits(ec2):
    from bake.steps.distribute import copy_tags

    st = state(ec2)
    st.record.ami_id = "ami-0123456789abcdef0"
    source = {f"{tags.KEY_IMAGE_PREFIX}{i}": "x" for i in range(45)} | {tags.KEY_POOL: "cpu", tags.KEY_FINGERPRINT: "f"}
    t = copy_tags(source, st)
    assert len(t) == tags.TAGS_MAX and t[tags.KEY_SOURCE_AMI] == st.record.ami_id
    assert f"{tags.KEY_IMAGE_PREFIX}0" in t and f"{tags.KEY_IMAGE_PREFIX}44" not in t  # the last images give way


def test_sharing_adds_launch_and_create_volume_permission(ec2):
    from bake.steps.distribute import StepCopyAmi, StepShareAmi

    org = "arn:aws:organizations::123456789012:organization/o-abcde12345"
    st = distributing_state(ec2, regions=["eu-west-1"], accounts=["111122223333"], organizations=[org])
    StepCopyAmi().run(st)
    StepShareAmi().run(st)
    for region, ami in [("us-east-1", st.record.ami_id), ("eu-west-1", st.record.copies["eu-west-1"])]:
        perms = st.run.ec2_in(region).describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
        assert {"UserId": "111122223333"} in perms and {"OrganizationArn": org} in perms
    snap = st.record.snapshot_ids[0]
    perms = ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")["CreateVolumePermissions"]
    assert {"UserId": "111122223333"} in perms


def test_a_cancel_during_copying_removes_the_started_copy_and_the_ami_and_starts_no_other(ec2):
    import boto3

    from bake.steps.distribute import StepCopyAmi

    st = distributing_state(ec2, regions=["eu-west-1", "us-west-2"])
    calls: list[str] = []

    def client(region: str):  # the signal arrives while the first CopyImage is in flight
        real = boto3.client("ec2", region_name=region)

        class Interrupting:
            def __getattr__(self, name):
                return getattr(real, name)

            def copy_image(self, **kw):
                calls.append(region)
                out = real.copy_image(**kw)
                st.run.cancel.cancel(2)
                return out

        return Interrupting()

    st.run = replace(st.run, ec2_in=lambda region: ec2 if region == "us-east-1" else client(region))
    with pytest.raises(Cancelled):
        run_steps([StepCreateAmi(), StepCopyAmi()], st)
    assert calls == ["eu-west-1"]
    copy = st.started_copies["eu-west-1"]
    eu = boto3.client("ec2", region_name="eu-west-1")
    assert eu.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [copy]}])["Images"] == []
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [st.record.ami_id]}])["Images"] == []



def test_a_data_volume_builder_launches_with_its_tagged_fast_data_volume(in_process_ec2):
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], ssh_cidrs=["203.0.113.7/32"],
                      cache="data-volume")
    st = state_for(plan_for(pool, disk=DiskPlan(gib=9, base_gib=0, compressed_bytes=1, images=1, volume="data")),
                   in_process_ec2)
    sent = []  # moto keeps no volume's IOPS or throughput from a launch: what the bake asks, then
    in_process_ec2.meta.events.register("provide-client-params.ec2.RunInstances", lambda params, **kw: sent.append(params))
    StepKeyPair().run(st)
    StepSecurityGroup().run(st)
    StepRunInstance().run(st)
    inst = in_process_ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
    [data] = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == "/dev/xvdb"]
    volume = in_process_ec2.describe_volumes(VolumeIds=[data["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (9, "gp3")
    # where the pulls run: the builder's gp3 speed (6,000 IOPS, capped at 500 per GiB: 4,500; 500 MiB/s)
    [asked] = [m["Ebs"] for m in sent[0]["BlockDeviceMappings"] if m["DeviceName"] == "/dev/xvdb"]
    assert (asked["VolumeSize"], asked["Iops"], asked["Throughput"]) == (9, 4500, 500)
    assert tags.from_aws(volume["Tags"])[tags.KEY_RUN] == st.run.id and data["Ebs"]["DeleteOnTermination"]
    StepRunInstance().cleanup(st)
    assert live_instances(in_process_ec2) == []
