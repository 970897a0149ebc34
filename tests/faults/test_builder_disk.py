"""The fast builder disk and EC2's clock, against a private moto server (no sandbox, no lock).

The builder's gp3 root volume gets the pool's builder IOPS and throughput at RunInstances,
and CreateImage changes nothing of an existing mapping but DeleteOnTermination, as AWS allows
(the server is the strict sandbox's, which refuses anything else; docs/aws-rules.md): checked on
what bake sent (the fault proxy logs each call's parameters) and on what moto holds. The nodes'
baseline volume is the launch template's (tests/rollout/test_node_volume.py). The clock's
answers (pending, stopping, AMI pending with snapshot progress, shutting-down) and its SSH
gate are checked directly.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
from faultproxy import FaultProxy

from bake.model.config import PoolConfig
from bake_sandbox.ec2_clock import Ec2Clock, Timing
from bake_sandbox.private_moto import private_moto_server
from bake.steps.ami import StepCreateAmi
from bake.steps.base import BuildState
from bake.steps.instance import StepRunInstance
from bake.steps.keypair import StepKeyPair
from bake.steps.security_group import StepSecurityGroup
from support.states import plan_for, state_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory) -> Iterator[str]:
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def proxy(moto_url) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_url).start()
    yield p
    p.stop()


def client(url: str):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def state(ec2, **pool_kw) -> BuildState:
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], ssh_cidrs=["203.0.113.7/32"], **pool_kw)
    return state_for(plan_for(pool), ec2, id=f"20260101T000000Z-{uuid.uuid4().hex[:6]}")


def bake_ami(st: BuildState) -> None:
    for step in (StepKeyPair(), StepSecurityGroup(), StepRunInstance()):
        step.run(st)
    StepCreateAmi().run(st)
    st.succeeded = True


def create_image_changes(params: dict[str, str]) -> set[str]:
    """The Ebs parameters CreateImage sent for any mapping (``BlockDeviceMapping.N.Ebs.KEY``)."""
    return {k.rsplit(".", 1)[1] for k in params if k.startswith("BlockDeviceMapping.") and ".Ebs." in k}


def test_builder_gets_fast_gp3_and_create_image_changes_only_delete_on_termination(proxy):
    ec2 = client(proxy.url)
    st = state(ec2, root_volume_size=40)
    bake_ami(st)
    run = proxy.calls_to("RunInstances")[0].params
    assert run["BlockDeviceMapping.1.Ebs.VolumeType"] == "gp3"
    assert (run["BlockDeviceMapping.1.Ebs.Iops"], run["BlockDeviceMapping.1.Ebs.Throughput"]) == ("6000", "500")
    assert run["BlockDeviceMapping.1.Ebs.VolumeSize"] == "40"
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [st.instance_id]}])["Volumes"]
    # moto keeps the type and size it was sent but shows gp3's default IOPS whatever was asked.
    assert [(v["VolumeType"], v["Size"]) for v in volumes] == [("gp3", 40)]
    image = proxy.calls_to("CreateImage")[0].params
    assert create_image_changes(image) <= {"DeleteOnTermination"}, image
    assert st.record.ami_id and ec2.describe_images(ImageIds=[st.record.ami_id])["Images"][0]["State"] == "available"
    StepRunInstance().cleanup(st)


def test_a_small_base_volume_gets_what_gp3_allows(proxy):
    # The base AMI's own root size when the pool sets none: 500 IOPS per GiB at most.
    ec2 = client(proxy.url)
    base = ec2.describe_images(ImageIds=["ami-ekslinux"])["Images"][0]
    size = next(b["Ebs"]["VolumeSize"] for b in base["BlockDeviceMappings"] if b["DeviceName"] == base["RootDeviceName"])
    st = state(ec2, builder_volume_iops=16000, builder_volume_throughput=1000)
    StepKeyPair().run(st)
    StepSecurityGroup().run(st)
    StepRunInstance().run(st)
    run = proxy.calls_to("RunInstances")[0].params
    iops = min(16000, size * 500)
    assert run["BlockDeviceMapping.1.Ebs.Iops"] == str(iops)
    assert run["BlockDeviceMapping.1.Ebs.Throughput"] == str(min(1000, iops // 4))
    assert run["BlockDeviceMapping.1.Ebs.VolumeSize"] == str(size)  # the snapshot's size, unchanged
    StepRunInstance().cleanup(st)


@pytest.mark.parametrize("pool", [{"builder_volume_iops": 0, "builder_volume_throughput": 0}, {"root_volume_type": "gp2"}])
def test_without_a_fast_disk_nothing_is_mapped(proxy, pool):
    st = state(client(proxy.url), **pool)
    bake_ami(st)
    assert not any(k.startswith("BlockDeviceMapping") for k in proxy.calls_to("RunInstances")[0].params)
    assert not create_image_changes(proxy.calls_to("CreateImage")[0].params)
    StepRunInstance().cleanup(st)


def test_clock_states_follow_ec2_times(moto_url):
    clock = Ec2Clock(moto_url, Timing(pending=1.0, stopping=0.8, shutting_down=0.6, ami_base=1.0, ami_per_gib=0.01)).start()
    try:
        ec2 = client(clock.url)
        iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

        def state_of() -> str:
            return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]

        assert state_of() == "pending"
        time.sleep(1.05)
        assert state_of() == "running"
        ec2.stop_instances(InstanceIds=[iid])
        assert state_of() == "stopping"
        time.sleep(0.85)
        assert state_of() == "stopped"
        ami = ec2.create_image(InstanceId=iid, Name="clock-test")["ImageId"]
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        assert image["State"] == "pending"
        snaps = [b["Ebs"]["SnapshotId"] for b in image["BlockDeviceMappings"] if "Ebs" in b]
        first = ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]
        time.sleep(0.5)
        later = ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]
        assert first["State"] == "pending" and int(first["Progress"].rstrip("%")) < int(later["Progress"].rstrip("%")) < 100
        time.sleep(1.0)
        assert ec2.describe_images(ImageIds=[ami])["Images"][0]["State"] == "available"
        assert ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"][0]["Progress"] == "100%"
        ec2.terminate_instances(InstanceIds=[iid])
        assert state_of() == "shutting-down"
        time.sleep(0.65)
        assert state_of() == "terminated"
    finally:
        clock.stop()


def test_clock_leaves_instances_it_did_not_launch_alone(moto_url):
    iid = client(moto_url).run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    clock = Ec2Clock(moto_url, Timing(pending=60)).start()
    try:
        inst = client(clock.url).describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        assert inst["State"]["Name"] == "running"
    finally:
        clock.stop()


def test_ssh_gate_resets_until_running_then_forwards(moto_url):
    upstream = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = upstream.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_test\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    clock = Ec2Clock(moto_url, Timing(pending=1.0), ssh_upstream=upstream.getsockname()).start()
    try:
        client(clock.url).run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)

        def banner() -> bytes:
            with socket.create_connection(("127.0.0.1", clock.ssh_port), timeout=5) as s:
                return s.recv(100) or s.recv(100)

        with pytest.raises(ConnectionResetError):  # at connect or at the first read
            banner()
        time.sleep(1.05)
        assert banner().startswith(b"SSH-2.0-")
    finally:
        clock.stop()
        upstream.close()
