"""A data-volume pool's two steps (bake/data_volume.py): the volume mounted at the runtime's
root before the runtime starts, and, once the runtime is stopped again, the volume unmounted
and snapshotted. No AMI is registered: the snapshot is the cache."""

from __future__ import annotations

from typing import Any

from bake import aws, resources, tags
from bake.aws.images import tool_snapshots
from bake.data_volume import CACHE_SNAPSHOT_ROLE, DEVICE, mount_script, undo_script, unmount_script
from bake.errors import BakeError
from bake.ssh import ConnectionLost, sudo
from bake.steps.ami import AmiFacts, ami_tags
from bake.steps.base import BuildState
from bake.steps.instance import stop_builder

ROLE = CACHE_SNAPSHOT_ROLE


def data_root(st: BuildState) -> str:
    return st.container_runtime().data_root


class StepMountDataVolume:
    name = "data-volume"
    title = "mounting the data volume at the runtime's root"

    def run(self, st: BuildState) -> None:
        st.data_volume_id = data_volume_of(st)
        root, service = data_root(st), st.container_runtime().service
        st.data_mounted = True  # from here on the undo unmounts it, if it got mounted (undo_script checks)
        st.conn.run(sudo(mount_script(st.data_volume_id, root, service)), timeout=300,
                    shown=f"mkfs.ext4 and mount {st.data_volume_id} at {root}")
        st.emit("step", f"data volume {st.data_volume_id} ({st.plan.data_volume_gib} GiB) mounted at {root}", step=self.name,
                data={"volume_id": st.data_volume_id})

    def cleanup(self, st: BuildState) -> None:
        # A failed bake: the builder goes (and its volume with it), but a kept builder, and this
        # machine's sandbox builder, should not keep the mount.
        if not st.data_mounted or st.conn is None:
            return
        try:
            st.conn.run(sudo(undo_script(st.data_volume_id or "", data_root(st))), timeout=120, shown="umount the data volume")
        except ConnectionLost:
            return  # the builder is gone or going: nothing is mounted on it for long
        st.data_mounted = False


def data_volume_of(st: BuildState) -> str:
    """The builder's volume at ``DEVICE``, as EC2 reports its mapping."""
    found = st.ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
    volumes = [m["Ebs"]["VolumeId"] for m in found.get("BlockDeviceMappings", []) if m["DeviceName"] == DEVICE]
    if not volumes:
        raise BakeError(f"pool {st.plan.pool.name}: builder {st.instance_id} has no volume at {DEVICE}")
    return volumes[0]


class StepSnapshotDataVolume:
    """``stop_builder``: a Bottlerocket builder's data volume is the OS's own (mounted at /local
    since boot, containerd's root bound under it): the builder is stopped, which unmounts it
    cleanly, before the snapshot, as aws-samples/bottlerocket-images-cache does (snapshot.sh,
    read 2026-12-07). Otherwise the bake unmounts the volume it mounted."""

    name = "cache-snapshot"
    title = "snapshotting the data volume"

    def __init__(self, stop_builder: bool = False):
        self.stop_builder = stop_builder

    def run(self, st: BuildState) -> None:
        if self.stop_builder:
            st.data_volume_id = st.data_volume_id or data_volume_of(st)
            st.emit("step", f"stopping builder {st.instance_id}: its shutdown unmounts the data volume", step=self.name)
            stop_builder(st, self.name)
        else:
            st.conn.run(sudo(unmount_script(data_root(st))), timeout=600, shown="sync and umount the data volume")
            st.data_mounted = False
        snapshot_tags = {**ami_tags(st), tags.KEY_ROLE: ROLE, "Name": f"bake-{st.plan.pool.name}-{st.run.id}"}
        resp = st.ec2.create_snapshot(
            VolumeId=st.data_volume_id,
            Description=f"eks-image-bake pool {st.plan.pool.name}: {len(st.plan.images)} image(s) cached, {st.plan.fingerprint[:19]}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags.as_aws(snapshot_tags)}],
        )
        st.record.cache_snapshot_id = resp["SnapshotId"]
        st.emit("step", f"snapshot {st.record.cache_snapshot_id} of {st.data_volume_id} requested, waiting until completed",
                step=self.name)
        st.waited(aws.wait(
            st.ec2, "snapshot_completed", cancel=st.run.cancel, timeout=st.plan.pool.ami_timeout, delay=15,
            what=f"snapshot {st.record.cache_snapshot_id} did not complete", hint="raise ami_timeout in bake.toml",
            SnapshotIds=[st.record.cache_snapshot_id],
        ), self.name)
        # The lock's entry names the cache by the snapshot (LockEntry.cache_snapshot_id; its
        # ami_id too, which is what prune, rollback and pins hold on to).
        st.record.ami_id = st.record.cache_snapshot_id
        st.record.snapshot_ids, st.record.snapshot_gib = [st.record.cache_snapshot_id], st.plan.data_volume_gib
        st.emit("step", f"snapshot {st.record.cache_snapshot_id} completed", step=self.name, status="done",
                data={"snapshot_id": st.record.cache_snapshot_id})

    def cleanup(self, st: BuildState) -> None:
        if st.succeeded or not st.record.cache_snapshot_id:
            return
        if resources.delete_snapshot(st.ec2, st.record.cache_snapshot_id):
            st.emit("cleanup", f"deleted unfinished snapshot {st.record.cache_snapshot_id}", step=self.name)


def describe_snapshot(ec2: Any, snapshot_id: str) -> dict[str, Any] | None:
    """The snapshot's DescribeSnapshots entry, or None when it is gone (or not a snapshot id)."""
    if not snapshot_id.startswith("snap-"):
        return None
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except Exception as e:
        if resources.is_not_found(e):
            return None
        raise
    return found[0] if found else None


def snapshot_available(ec2: Any, snapshot_id: str) -> bool:
    found = describe_snapshot(ec2, snapshot_id)
    return found is not None and found.get("State") == "completed"


def snapshot_with_fingerprint(ec2: Any, pool: str, fp: str) -> str | None:
    """The pool's newest completed cache snapshot tagged with the fingerprint (a lost lock)."""
    found = tool_snapshots(ec2, role=ROLE, pool=pool, fingerprint=fp, completed=True)
    return found[0]["SnapshotId"] if found else None


def snapshot_facts(ec2: Any, snapshot_id: str) -> AmiFacts:
    """What the lock records of a cache snapshot beside its id (as ``ami_facts`` of an AMI)."""
    found = describe_snapshot(ec2, snapshot_id)
    if found is None:
        return AmiFacts([], None, None)
    cached = tags.from_aws(found.get("Tags")).get(tags.KEY_CACHE_BYTES)
    return AmiFacts([snapshot_id], found.get("VolumeSize"), int(cached) if cached and cached.isdigit() else None)
