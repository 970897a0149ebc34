"""The builder instance: launched from the base AMI with IMDSv2 required, terminated at the end."""

from __future__ import annotations

from typing import Any

from bake import aws, resources, tags
from bake.steps.base import BuildState


def block_devices(st: BuildState, image: dict[str, Any]) -> list[dict[str, Any]]:
    """The root volume's size, type and encryption: the pool's, else sized from the images
    (``bake.disk``, decided while planning)."""
    pool = st.pool
    size = pool.root_volume_size if pool.root_volume_size is not None else st.root_volume_gib
    if size is None and pool.kms_key_id is None:
        return []
    ebs: dict[str, Any] = {"VolumeType": pool.root_volume_type, "DeleteOnTermination": True}
    if size is not None:
        ebs["VolumeSize"] = size
    if pool.kms_key_id:
        ebs["Encrypted"] = True
        ebs["KmsKeyId"] = pool.kms_key_id
    return [{"DeviceName": image.get("RootDeviceName", "/dev/xvda"), "Ebs": ebs}]


class StepRunInstance:
    name = "instance"
    title = "launching the builder instance"

    def run(self, st: BuildState) -> None:
        pool = st.pool
        image = st.ec2.describe_images(ImageIds=[st.base_ami])["Images"][0]
        run_tags = tags.as_aws(
            tags.run_tags(st.run_id, pool.name, "builder", st.created_at, {"Name": f"bake-{pool.name}-builder", **pool.tags})
        )
        args: dict[str, Any] = {
            "ImageId": st.base_ami,
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
            "ClientToken": f"{st.run_id}-{pool.name}"[:64],
            "InstanceInitiatedShutdownBehavior": "stop",
        }
        if pool.subnet_id:
            args["SubnetId"] = pool.subnet_id
        if pool.iam_instance_profile:
            key = "Arn" if pool.iam_instance_profile.startswith("arn:") else "Name"
            args["IamInstanceProfile"] = {key: pool.iam_instance_profile}
        if devices := block_devices(st, image):
            args["BlockDeviceMappings"] = devices
        resp = st.ec2.run_instances(**args)
        st.instance_id = resp["Instances"][0]["InstanceId"]
        st.emit("step", f"builder {st.instance_id} ({pool.instance_type}) launched, waiting for running", step=self.name)
        aws.wait(
            st.ec2,
            "instance_running",
            cancel=st.cancel,
            timeout=pool.ssh_timeout,
            hint="raise ssh_timeout in bake.toml",
            delay=5,
            what=f"builder {st.instance_id} did not start",
            InstanceIds=[st.instance_id],
        )

    def cleanup(self, st: BuildState) -> None:
        if st.instance_id and resources.terminate_instances(st.ec2, [st.instance_id]):
            st.emit("cleanup", f"terminated builder {st.instance_id}", step=self.name)
