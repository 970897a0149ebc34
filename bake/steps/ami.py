"""Stop the builder and snap the AMI; deregister it (and its snapshots) unless the bake
succeeded, as Packer's stepCreateAMI does."""

from __future__ import annotations

from typing import Any, NamedTuple

from bake import aws, resources, tags
from bake.aws import images
from bake.errors import BakeError
from bake.model.times import compact_utc
from bake.steps.base import BuildState
from bake.steps.instance import stop_builder

PROGRESS_EVERY = 2.0  # seconds between AMI progress reports (and their DescribeSnapshots call)


def ami_tags(st: BuildState) -> dict[str, str]:
    base = tags.run_tags(st.run.id, st.plan.pool.name, "ami", st.run.created_at, dict(st.plan.pool.tags))
    base.update(
        {
            "Name": st.ami_name or f"bake-{st.plan.pool.name}",
            tags.KEY_FINGERPRINT: st.plan.fingerprint,
            tags.KEY_BASE_AMI: st.plan.base_ami,
            tags.KEY_RUNTIME: st.plan.pool.runtime,
        }
    )
    if st.record.cache_bytes is not None:
        base[tags.KEY_CACHE_BYTES] = str(st.record.cache_bytes)
    if st.record.gpu_driver_version:
        base[tags.KEY_GPU_DRIVER] = st.record.gpu_driver_version
    pairs = [(img.ref.original, img.digest) for img in st.plan.images]
    base.update(tags.image_tags(pairs, tags.TAGS_MAX - len(base)))
    return base


def eta_from_progress(elapsed: float, percent: int) -> float | None:
    """When the AMI should be available, from its snapshots' progress ``elapsed`` seconds in:
    now at 100% (an AMI follows its snapshots), else the rate so far carried on. None below
    5%, where a whole percent is too coarse a step to say anything."""
    if percent >= 100:
        return elapsed
    return elapsed * 100 / percent if percent >= 5 else None


class SnapshotProgress:
    """While the AMI is pending: its elapsed time and its snapshots' own progress
    (DescribeSnapshots' percentage), at most every PROGRESS_EVERY seconds (one call each).
    Returns when the progress so far says the AMI will be available, which the wait's quick
    polls follow (``bake.aws.wait``); EC2's progress is uneven, so each report corrects it."""

    def __init__(self, st: BuildState):
        self.st = st
        self.last = -PROGRESS_EVERY
        self.snapshots: list[str] = []
        self.eta: float | None = None

    def __call__(self, elapsed: float) -> float | None:
        if elapsed - self.last < PROGRESS_EVERY:
            return self.eta
        self.last = elapsed
        st = self.st
        data: dict[str, Any] = {"ami_id": st.record.ami_id, "elapsed": round(elapsed, 1)}
        try:
            self.snapshots = self.snapshots or images.snapshot_ids_of(st.ec2, st.record.ami_id or "")
            if self.snapshots:
                found = st.ec2.describe_snapshots(SnapshotIds=self.snapshots)["Snapshots"]
                percents = [int(str(s.get("Progress") or "0").rstrip("%") or 0) for s in found]
                data["snapshot_progress"] = min(percents) if percents else 0
                self.eta = eta_from_progress(elapsed, data["snapshot_progress"]) or self.eta
        except Exception as e:  # noqa: BLE001 - progress is a display; the wait itself decides
            if aws.describe_error(e) is None:
                raise
        shown = f", snapshots {data['snapshot_progress']}%" if "snapshot_progress" in data else ""
        st.emit("step", f"AMI {st.record.ami_id} pending for {elapsed:.0f}s{shown}", step="ami", status="progress", data=data)
        return self.eta


class StepCreateAmi:
    name = "ami"
    title = "creating the AMI"

    def run(self, st: BuildState) -> None:
        stop_builder(st, self.name)
        stamp = compact_utc()
        st.ami_name = f"bake-{st.plan.pool.name}-{stamp}-{st.run.id[-6:]}"
        aws_tags = tags.as_aws(ami_tags(st))
        resp = st.ec2.create_image(
            InstanceId=st.instance_id,
            Name=st.ami_name,
            Description=(f"eks-image-bake pool {st.plan.pool.name}: {len(st.plan.images)} image(s) cached, "
                         f"{st.plan.fingerprint[:19]}"),
            # Snapshots are tagged once known (below): the AMI's tags already let a sweep find
            # them, and not every EC2 implementation takes snapshot tag specifications here.
            TagSpecifications=[{"ResourceType": "image", "Tags": aws_tags}],
            # No BlockDeviceMappings: for the instance's own volumes CreateImage may change only
            # DeleteOnTermination (docs/aws-rules.md). The AMI records the builder's volume as it
            # ran (a fast gp3 one, maybe); the nodes' launch template states the pool's baseline.
        )
        st.record.ami_id = resp["ImageId"]
        st.emit("step", f"AMI {st.record.ami_id} ({st.ami_name}) requested, waiting until available", step=self.name)
        st.waited(aws.wait(
            st.ec2, "image_available", cancel=st.run.cancel, timeout=st.plan.pool.ami_timeout, delay=15,
            what=f"AMI {st.record.ami_id} did not become available", hint="raise ami_timeout in bake.toml",
            on_poll=SnapshotProgress(st), ImageIds=[st.record.ami_id],
        ), self.name)
        facts = ami_facts(st.ec2, st.record.ami_id)
        st.record.snapshot_ids, st.record.snapshot_gib = facts.snapshot_ids, facts.snapshot_gib
        if st.record.snapshot_ids:
            st.ec2.create_tags(Resources=st.record.snapshot_ids, Tags=aws_tags)
        st.emit("step", f"AMI {st.record.ami_id} available", step=self.name, status="done", data={"ami_id": st.record.ami_id})

    def cleanup(self, st: BuildState) -> None:
        if st.succeeded or not st.record.ami_id:
            return
        removal = resources.deregister_image_and_snapshots(st.ec2, st.record.ami_id, st.record.snapshot_ids or None)
        if removal.failures:
            raise BakeError("; ".join(removal.failures))
        st.emit("cleanup", f"deregistered unfinished AMI {st.record.ami_id} and {len(removal.snapshots)} snapshot(s)",
                step=self.name)


class AmiFacts(NamedTuple):
    snapshot_ids: list[str]  # in mapping order
    snapshot_gib: int | None  # the sizes of the volumes they were taken of, GiB
    cache_bytes: int | None  # the bake:cache-bytes tag


def ami_facts(ec2: Any, ami_id: str) -> AmiFacts:
    """What the lock records of an AMI beside its id; nothing when the AMI is gone."""
    image = images.describe(ec2, ami_id)
    if image is None:
        return AmiFacts([], None, None)
    return AmiFacts(image.snapshot_ids, image.snapshot_gib, image.cache_bytes)
