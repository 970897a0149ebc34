"""``bake.resources``, the one vocabulary for removing what a bake creates, against in-process
moto (the sweep, prune and fault tests drive the same functions through the moto server)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bake import polling, resources
from bake.aws import images
from bake.cancel import CancelToken
from bake.errors import BakeError, Cancelled


@pytest.fixture
def ec2(in_process_ec2):
    """In-process moto (tests/conftest.py)."""
    return in_process_ec2


def error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)


class Refusing:
    """An EC2 client whose ``operation`` fails with ``code`` the first ``times`` calls, then is
    the real (moto) client: how a terminated instance's lingering interface looks to a caller."""

    def __init__(self, ec2, operation: str, code: str, times: int):
        self._ec2, self._op, self._code, self._left = ec2, operation, code, times
        self.calls = 0

    def __getattr__(self, name):
        real = getattr(self._ec2, name)
        if name != self._op:
            return real

        def call(**kwargs):
            self.calls += 1
            if self._left:
                self._left -= 1
                raise error(self._code, self._op)
            return real(**kwargs)

        return call


def group(ec2) -> str:
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    return ec2.create_security_group(GroupName="bake-t", Description="t", VpcId=vpc)["GroupId"]


def groups(ec2, group_id: str) -> list:
    return ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroups"]


def image(ec2) -> tuple[str, list[str]]:
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name="bake-t")["ImageId"]
    snaps = images.snapshot_ids_of(ec2, ami)
    assert snaps, "moto gives an AMI made from an instance its root snapshot"
    return ami, snaps


def snapshots(ec2) -> set[str]:
    return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_security_group_deletion_retries_dependency_violation(ec2):
    gid = group(ec2)
    flaky = Refusing(ec2, "delete_security_group", "DependencyViolation", times=2)
    assert resources.delete_security_group(flaky, gid, delay=0.01) is True
    assert flaky.calls == 3 and groups(ec2, gid) == []
    assert resources.delete_security_group(ec2, gid) is False  # already gone: not an error


class Sleeps(CancelToken):
    """A token that records the pauses asked of it instead of sleeping."""

    def __init__(self):
        super().__init__()
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)


def test_security_group_retries_quickly_first_and_never_beyond_the_delay(ec2):
    # A lingering interface is usually gone within seconds: retries start at the polling
    # schedule's quick interval (bake.polling), not at the 5 s ceiling.
    gid = group(ec2)
    token = Sleeps()
    flaky = Refusing(ec2, "delete_security_group", "DependencyViolation", times=3)
    assert resources.delete_security_group(flaky, gid, cancel=token) is True
    assert token.pauses == [polling.QUICK] * 3
    short = Sleeps()
    flaky = Refusing(ec2, "delete_security_group", "DependencyViolation", times=2)
    assert resources.delete_security_group(flaky, group(ec2), cancel=short, delay=0.2) is True
    assert short.pauses == [0.2, 0.2]


def test_security_group_dependency_violation_past_the_timeout_is_raised(ec2):
    gid = group(ec2)
    stuck = Refusing(ec2, "delete_security_group", "DependencyViolation", times=1000)
    with pytest.raises(ClientError, match="DependencyViolation"):
        resources.delete_security_group(stuck, gid, timeout=0.05, delay=0.01)
    assert stuck.calls > 1 and groups(ec2, gid)


def test_security_group_other_refusals_are_not_retried(ec2):
    refused = Refusing(ec2, "delete_security_group", "UnauthorizedOperation", times=1)
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        resources.delete_security_group(refused, group(ec2), delay=0.01)
    assert refused.calls == 1


def test_security_group_wait_is_cancellable_only_when_given_a_token(ec2):
    token = CancelToken()
    token.cancel(2)
    stuck = Refusing(ec2, "delete_security_group", "DependencyViolation", times=1000)
    with pytest.raises(Cancelled):
        resources.delete_security_group(stuck, group(ec2), cancel=token, delay=0.01)


def test_terminate_waits_until_terminated_and_tolerates_gone(ec2):
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-ekslinux", MinCount=2, MaxCount=2)["Instances"]]
    assert resources.terminate_instances(ec2, [*ids, "i-0123456789abcdef0"], delay=0.01) == ids
    states = {i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]}
    assert states == {"terminated"}


def test_terminate_that_does_not_finish_in_time_fails(ec2, monkeypatch):
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    monkeypatch.setattr(ec2, "terminate_instances", lambda **kw: None)  # accepted; it keeps running
    with pytest.raises(BakeError, match=f"instance {iid} did not terminate"):
        resources.terminate_instances(ec2, [iid], timeout=0.05, delay=0.01)


def test_ami_and_its_snapshots_go_together_and_gone_is_fine(ec2):
    ami, snaps = image(ec2)
    removal = resources.deregister_image_and_snapshots(ec2, ami)
    assert (removal.deregistered, removal.deleted, removal.failures) == (True, snaps, [])
    assert images.describe(ec2, ami) is None and not set(snaps) & snapshots(ec2)
    again = resources.deregister_image_and_snapshots(ec2, ami, snaps)  # already gone: no error
    assert (again.deregistered, again.deleted, again.failures) == (False, [], [])
    assert resources.deregister_image(ec2, "ami-00000000000000000") is False
    assert resources.delete_snapshot(ec2, "snap-00000000000000000") is False


def test_an_ami_that_cannot_be_deregistered_keeps_its_snapshots(ec2):
    ami, snaps = image(ec2)
    refused = Refusing(ec2, "deregister_image", "OperationNotPermitted", times=1)
    removal = resources.deregister_image_and_snapshots(refused, ami)
    assert removal.failures == [f"AMI {ami}: OperationNotPermitted"] and removal.deleted == []
    assert set(snaps) <= snapshots(ec2)


def test_one_refused_snapshot_does_not_stop_the_others(ec2):
    ami, snaps = image(ec2)
    extra = ec2.create_snapshot(VolumeId=ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"])["SnapshotId"]
    refused = Refusing(ec2, "delete_snapshot", "UnauthorizedOperation", times=1)
    removal = resources.deregister_image_and_snapshots(refused, ami, [*snaps, extra])
    # A refusal is said in full (lifecycle's why): the action and the command printing the policy.
    (failure,) = removal.failures
    assert failure.startswith(f"snapshot {snaps[0]} (of {ami}): AccessDenied: delete_snapshot is not allowed")
    assert "python -m bake iam-policy --role" in failure
    assert removal.deleted == [*snaps[1:], extra] and extra not in snapshots(ec2)


def test_image_lookups(ec2):
    ami, snaps = image(ec2)
    assert resources.image_available(ec2, ami)
    assert not resources.image_available(ec2, "ami-00000000000000000")
    assert images.describe(ec2, "not-an-ami-id") is None  # malformed names nothing
    assert images.Image({"BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}, {"VirtualName": "ephemeral0"}]}).snapshot_ids == ["snap-1"]


def test_not_found_is_one_set_of_codes():
    assert resources.is_not_found(error("InvalidGroup.NotFound", "DeleteSecurityGroup"))
    assert resources.is_not_found(error("InvalidAMIID.Unavailable", "DeregisterImage"))
    assert not resources.is_not_found(error("DependencyViolation", "DeleteSecurityGroup"))
    assert not resources.is_not_found(ValueError("not an AWS error"))
