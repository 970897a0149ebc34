"""Each step and its undo, against moto in-process (unit level; the end-to-end tests use the
moto server, a real sshd and real runtimes)."""

from __future__ import annotations

import pytest
from moto import mock_aws

from bake import tags
from bake.cancel import CancelToken
from bake.errors import BakeError, Cancelled
from bake.model.config import PoolConfig
from bake.progress import NullReporter
from bake.steps.ami import StepCreateAmi, ami_tags
from bake.steps.base import BuildState, run_steps
from bake.steps.instance import StepRunInstance
from bake.steps.keypair import StepKeyPair
from bake.steps.security_group import StepSecurityGroup


@pytest.fixture
def ec2(monkeypatch):
    for k in ("AWS_ENDPOINT_URL",):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="us-east-1")


def state(ec2, **pool_kw) -> BuildState:
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], ssh_cidrs=["203.0.113.7/32"], **pool_kw)
    return BuildState(pool=pool, run_id="20260101T000000Z-abcdef", created_at="2026-01-01T00:00:00Z",
                      region="us-east-1", ec2=ec2, base_ami="ami-ekslinux", images=[], fingerprint="sha256:f",
                      reporter=NullReporter(), cancel=CancelToken())


def live_instances(ec2):
    res = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in res["Reservations"] for i in r["Instances"]]


def test_key_pair_is_ed25519_tagged_and_undone(ec2):
    st = state(ec2)
    StepKeyPair().run(st)
    kp = ec2.describe_key_pairs(KeyNames=[st.key_name], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["PublicKey"].startswith("ssh-ed25519 ")
    assert tags.from_aws(kp["Tags"])[tags.KEY_RUN] == st.run_id
    assert st.private_key.get_name() == "ssh-ed25519"
    StepKeyPair().cleanup(st)
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [st.key_name]}])["KeyPairs"] == []
    StepKeyPair().cleanup(st)  # tolerant of what is already gone


def test_security_group_admits_only_configured_cidrs(ec2):
    st = state(ec2)
    StepSecurityGroup().run(st)
    sg = ec2.describe_security_groups(GroupIds=[st.security_group_id])["SecurityGroups"][0]
    perms = sg["IpPermissions"]
    assert len(perms) == 1 and perms[0]["FromPort"] == 22 and perms[0]["ToPort"] == 22
    assert [r["CidrIp"] for r in perms[0]["IpRanges"]] == ["203.0.113.7/32"]
    StepSecurityGroup().cleanup(st)
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [st.security_group_id]}])["SecurityGroups"]


def test_instance_requires_imdsv2_and_is_terminated(ec2):
    st = state(ec2, root_volume_size=120)
    StepKeyPair().run(st)
    StepSecurityGroup().run(st)
    StepRunInstance().run(st)
    inst = ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["KeyName"] == st.key_name
    assert tags.from_aws(inst["Tags"])[tags.KEY_ROLE] == "builder"
    StepRunInstance().cleanup(st)
    assert live_instances(ec2) == []


def test_ami_deregistered_with_snapshots_unless_succeeded(ec2):
    st = state(ec2)
    st.instance_id = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    StepCreateAmi().run(st)
    image = ec2.describe_images(ImageIds=[st.ami_id])["Images"][0]
    t = tags.from_aws(image["Tags"])
    assert t[tags.KEY_FINGERPRINT] == "sha256:f" and t[tags.KEY_BASE_AMI] == "ami-ekslinux"
    assert st.snapshot_ids
    StepCreateAmi().cleanup(st)  # not succeeded: undo
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [st.ami_id]}])["Images"] == []
    snaps = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert not set(st.snapshot_ids) & {s["SnapshotId"] for s in snaps}


def test_ami_kept_when_succeeded(ec2):
    st = state(ec2)
    st.instance_id = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    StepCreateAmi().run(st)
    st.succeeded = True
    StepCreateAmi().cleanup(st)
    assert ec2.describe_images(ImageIds=[st.ami_id])["Images"][0]["State"] == "available"


def test_ami_tags_stay_within_aws_limits(ec2):
    from bake.model.refs import parse_reference
    from bake.model.images import ResolvedImage

    st = state(ec2)
    st.images = [ResolvedImage(parse_reference(f"quay.io/org/img-{i}:v1"), "sha256:" + "c" * 64, None) for i in range(80)]
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


def test_runner_undoes_last_in_first_out_including_the_failed_step(ec2):
    log: list[str] = []
    steps = [Recorder("a", log), Recorder("b", log), Recorder("c", log, fail=True), Recorder("d", log)]
    with pytest.raises(BakeError, match="c broke"):
        run_steps(steps, state(ec2))
    assert log == ["run a", "run b", "run c", "undo c", "undo b", "undo a"]


def test_runner_undoes_on_cancel_and_reports_cleanup_failures(ec2):
    log: list[str] = []
    st = state(ec2)

    class CancelDuring(Recorder):
        def run(self, st_):
            super().run(st_)
            st_.cancel.cancel(15)
            st_.cancel.check()

    class BrokenUndo(Recorder):
        def cleanup(self, st_):
            raise RuntimeError("AWS said no")

    with pytest.raises(Cancelled) as e:
        run_steps([BrokenUndo("a", log), CancelDuring("b", log), Recorder("c", log)], st)
    assert e.value.exit_code == 143
    assert log == ["run a", "run b", "undo b"]
    assert st.cleanup_errors == ["a: AWS said no"]
