"""Stop the builder and snap the AMI; deregister it (and its snapshots) unless the bake
succeeded, as Packer's stepCreateAMI does."""

from __future__ import annotations

from datetime import datetime, timezone

from bake import aws, resources, tags
from bake.errors import BakeError
from bake.steps.base import BuildState

STOP_TIMEOUT = 900


def ami_tags(st: BuildState) -> dict[str, str]:
    base = tags.run_tags(st.run_id, st.pool.name, "ami", st.created_at, dict(st.pool.tags))
    base.update(
        {
            "Name": st.ami_name or f"bake-{st.pool.name}",
            tags.KEY_FINGERPRINT: st.fingerprint,
            tags.KEY_BASE_AMI: st.base_ami,
            tags.KEY_RUNTIME: st.pool.runtime,
        }
    )
    if st.gpu_driver_version:
        base[tags.KEY_GPU_DRIVER] = st.gpu_driver_version
    pairs = [(img.ref.original, img.digest) for img in st.images]
    base.update(tags.image_tags(pairs, tags.TAGS_MAX - len(base)))
    return base


class StepCreateAmi:
    name = "ami"
    title = "creating the AMI"

    def run(self, st: BuildState) -> None:
        st.ec2.stop_instances(InstanceIds=[st.instance_id])
        aws.wait(
            st.ec2, "instance_stopped", cancel=st.cancel, timeout=STOP_TIMEOUT, delay=5,
            what=f"builder {st.instance_id} did not stop", InstanceIds=[st.instance_id],
        )
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        st.ami_name = f"bake-{st.pool.name}-{stamp}-{st.run_id[-6:]}"
        aws_tags = tags.as_aws(ami_tags(st))
        resp = st.ec2.create_image(
            InstanceId=st.instance_id,
            Name=st.ami_name,
            Description=f"eks-image-bake pool {st.pool.name}: {len(st.images)} image(s) cached, {st.fingerprint[:19]}",
            # Snapshots are tagged once known (below): the AMI's tags already let a sweep find
            # them, and not every EC2 implementation takes snapshot tag specifications here.
            TagSpecifications=[{"ResourceType": "image", "Tags": aws_tags}],
        )
        st.ami_id = resp["ImageId"]
        st.emit("step", f"AMI {st.ami_id} ({st.ami_name}) requested, waiting until available", step=self.name)
        aws.wait(
            st.ec2, "image_available", cancel=st.cancel, timeout=st.pool.ami_timeout, delay=15,
            what=f"AMI {st.ami_id} did not become available", hint="raise ami_timeout in bake.toml",
            ImageIds=[st.ami_id],
        )
        st.snapshot_ids = resources.image_snapshot_ids(st.ec2, st.ami_id)
        if st.snapshot_ids:
            st.ec2.create_tags(Resources=st.snapshot_ids, Tags=aws_tags)
        st.emit("step", f"AMI {st.ami_id} available", step=self.name, status="done", data={"ami_id": st.ami_id})

    def cleanup(self, st: BuildState) -> None:
        if st.succeeded or not st.ami_id:
            return
        removal = resources.deregister_image_and_snapshots(st.ec2, st.ami_id, st.snapshot_ids or None)
        if removal.failures:
            raise BakeError("; ".join(removal.failures))
        st.emit("cleanup", f"deregistered unfinished AMI {st.ami_id} and {len(removal.snapshots)} snapshot(s)",
                step=self.name)
