"""The builder instance: launched from the base AMI with IMDSv2 required, terminated at the end."""

from __future__ import annotations

from typing import Any

from bake import aws, resources, tags
from bake.model.config import GP3_BASE_IOPS, GP3_BASE_MIBS, GP3_IOPS_PER_GIB, GP3_MIBS_PER_IOPS, PoolConfig
from bake.steps.base import BuildState


def block_devices(st: BuildState, image: dict[str, Any]) -> list[dict[str, Any]]:
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
        size = size or root_snapshot_size(image)
        # gp3 allows 500 IOPS per GiB: a small base volume gets what it can take.
        iops = pool.builder_volume_iops or GP3_BASE_IOPS
        if size:
            ebs["VolumeSize"] = size  # the snapshot's own size, stated: not every EC2 infers it
            iops = max(GP3_BASE_IOPS, min(iops, size * GP3_IOPS_PER_GIB))
        ebs["Iops"] = iops
        ebs["Throughput"] = min(pool.builder_volume_throughput or GP3_BASE_MIBS, int(iops * GP3_MIBS_PER_IOPS))
    return [{"DeviceName": image.get("RootDeviceName", "/dev/xvda"), "Ebs": ebs}]


def fast_builder_disk(pool: PoolConfig) -> bool:
    return pool.root_volume_type == "gp3" and bool(pool.builder_volume_iops or pool.builder_volume_throughput)


def root_snapshot_size(image: dict[str, Any]) -> int | None:
    root = image.get("RootDeviceName")
    for bdm in image.get("BlockDeviceMappings", []):
        if bdm.get("DeviceName") == root and bdm.get("Ebs", {}).get("VolumeSize"):
            return int(bdm["Ebs"]["VolumeSize"])
    return None


class StepRunInstance:
    name = "instance"
    title = "launching the builder instance"

    def run(self, st: BuildState) -> None:
        pool = st.plan.pool
        image = st.plan.base_image or st.ec2.describe_images(ImageIds=[st.plan.base_ami])["Images"][0]
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
        if pool.iam_instance_profile:
            key = "Arn" if pool.iam_instance_profile.startswith("arn:") else "Name"
            args["IamInstanceProfile"] = {key: pool.iam_instance_profile}
        if devices := block_devices(st, image):
            args["BlockDeviceMappings"] = devices
        st.root_device_name = image.get("RootDeviceName", "/dev/xvda")
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
