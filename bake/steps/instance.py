"""The builder instance: launched from the base AMI with IMDSv2 required, terminated at the end."""

from __future__ import annotations

from typing import Any

from bake import aws, resources, tags
from bake.aws.images import Image, describe
from bake.bottlerocket import ADMIN_USER_DATA
from bake.errors import BakeError
from bake.data_volume import MIN_GIB as DATA_VOLUME_MIN_GIB
from bake.data_volume import launch_mapping
from bake.model.config import GP3_BASE_IOPS, GP3_BASE_MIBS, GP3_IOPS_PER_GIB, GP3_MIBS_PER_IOPS, PoolConfig
from bake.steps.base import BuildState

DEFAULT_ROOT_DEVICE = "/dev/xvda"  # an image that names no root device (EC2's Linux default)
STOP_TIMEOUT = 900


def block_devices(st: BuildState, image: Image) -> list[dict[str, Any]]:
    """The builder's root volume: the pool's size (else sized from the images, ``bake.disk``,
    decided while planning), type and encryption, and on gp3 the builder's own IOPS and
    throughput (pulls and unpacking run at the volume's speed)."""
    pool = st.plan.pool
    size = st.plan.root_volume_gib
    fast = fast_builder_disk(pool)
    if size is None and pool.kms_key_id is None and not fast:
        return []
    ebs: dict[str, Any] = {"VolumeType": pool.root_volume_type, "DeleteOnTermination": True}
    if size is not None:
        ebs["VolumeSize"] = size
    if pool.kms_key_id:
        ebs["Encrypted"] = True
        ebs["KmsKeyId"] = pool.kms_key_id
    if fast:
        size = size or image.root_volume_gib
        if size:
            ebs["VolumeSize"] = size  # the snapshot's own size, stated: not every EC2 infers it
        ebs.update(builder_speed(pool, size))
    return [{"DeviceName": image.root_device or DEFAULT_ROOT_DEVICE, "Ebs": ebs}]


def builder_speed(pool: PoolConfig, size: int | None) -> dict[str, int]:
    """The gp3 IOPS and throughput the builder's pulls run at on a volume of ``size`` GiB: gp3
    allows 500 IOPS per GiB, so a small volume gets what it can take."""
    iops = pool.builder_volume_iops or GP3_BASE_IOPS
    if size:
        iops = max(GP3_BASE_IOPS, min(iops, size * GP3_IOPS_PER_GIB))
    return {"Iops": iops, "Throughput": min(pool.builder_volume_throughput or GP3_BASE_MIBS, int(iops * GP3_MIBS_PER_IOPS))}


def fast_builder_disk(pool: PoolConfig) -> bool:
    return pool.root_volume_type == "gp3" and bool(pool.builder_volume_iops or pool.builder_volume_throughput)


class StepRunInstance:
    name = "instance"
    title = "launching the builder instance"

    def run(self, st: BuildState) -> None:
        pool = st.plan.pool
        image = Image(st.plan.base_image) if st.plan.base_image else describe(st.ec2, st.plan.base_ami)
        if image is None:
            raise BakeError(f"pool {pool.name}: base AMI {st.plan.base_ami} does not exist or is not visible to this account")
        run_tags = tags.as_aws(
            tags.run_tags(st.run.id, pool.name, "builder", st.run.created_at, {"Name": f"bake-{pool.name}-builder", **pool.tags})
        )
        args: dict[str, Any] = {
            "ImageId": st.plan.base_ami,
            "InstanceType": pool.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "KeyName": st.key_name,
            "SecurityGroupIds": [st.security_group_id, *pool.security_group_ids],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": run_tags},
                {"ResourceType": "volume", "Tags": run_tags},
            ],
            # Idempotent: a retried call (throttling, 5xx) never launches a second builder.
            "ClientToken": f"{st.run.id}-{pool.name}"[:64],
            "InstanceInitiatedShutdownBehavior": "stop",
        }
        if pool.subnet_id:
            args["SubnetId"] = pool.subnet_id
        if pool.os == "bottlerocket":  # its admin container, where the bake's SSH lands (bake/bottlerocket.py)
            args["UserData"] = ADMIN_USER_DATA
        if pool.iam_instance_profile:
            key = "Arn" if pool.iam_instance_profile.startswith("arn:") else "Name"
            args["IamInstanceProfile"] = {key: pool.iam_instance_profile}
        devices = block_devices(st, image)
        if pool.cache == "data-volume":  # the cache's own volume, where the pulls run (bake/data_volume.py)
            gib = st.plan.data_volume_gib or DATA_VOLUME_MIN_GIB
            data = launch_mapping(gib, pool.root_volume_type, pool.kms_key_id)
            if fast_builder_disk(pool):
                data["Ebs"].update(builder_speed(pool, gib))
            devices.append(data)
        if devices:
            args["BlockDeviceMappings"] = devices
        st.root_device_name = image.root_device or DEFAULT_ROOT_DEVICE
        resp = st.ec2.run_instances(**args)
        st.instance_id = resp["Instances"][0]["InstanceId"]
        st.emit("step", f"builder {st.instance_id} ({pool.instance_type}) launched, waiting for running", step=self.name)
        stats = aws.wait(
            st.ec2,
            "instance_running",
            cancel=st.run.cancel,
            timeout=pool.ssh_timeout,
            hint="raise ssh_timeout in bake.toml",
            delay=5,
            what=f"builder {st.instance_id} did not start",
            InstanceIds=[st.instance_id],
        )
        st.waited(stats, self.name)

    def cleanup(self, st: BuildState) -> None:
        if st.instance_id and resources.terminate_instances(
            st.ec2, [st.instance_id], on_wait=lambda stats: st.waited(stats, self.name)
        ):
            st.emit("cleanup", f"terminated builder {st.instance_id}", step=self.name)


def stop_builder(st: BuildState, step: str) -> None:
    """Stop the builder and wait until it is stopped: its OS's shutdown stops the runtime and
    unmounts its volumes, so what is imaged or snapshotted next is a clean filesystem. Nothing
    runs a command on the builder after this."""
    st.ec2.stop_instances(InstanceIds=[st.instance_id])
    st.waited(aws.wait(
        st.ec2, "instance_stopped", cancel=st.run.cancel, timeout=STOP_TIMEOUT, delay=5,
        what=f"builder {st.instance_id} did not stop", InstanceIds=[st.instance_id],
    ), step)
