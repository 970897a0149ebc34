"""Distribute a data-volume pool's cache snapshot (docs/data-volume.md "Copies and sharing"): a
copy in each of the pool's other regions, encrypted with that region's KMS key when one is named,
then create-volume permission for the accounts on the snapshot and every copy. The nodes of a copy
region launch that region's stock AMI (``PoolPlan.region_base_amis``), recorded beside the copy.

As for an AMI's copies (bake/steps/distribute.py): every copy is started before any is waited
for, tagged by CopySnapshot itself (its TagSpecifications: ``sweep`` finds a killed run's), and
the undo deletes the copies this run started unless the bake succeeded.
"""

from __future__ import annotations

from bake import aws, resources, tags
from bake.errors import BakeError
from bake.steps.base import BuildState
from bake.steps.data_volume import describe_snapshot
from bake.steps.distribute import copy_tags, start_copies


class StepCopyCacheSnapshot:
    name = "cache-copies"
    title = "copying the cache snapshot to other regions"

    def run(self, st: BuildState) -> None:
        snap = st.record.ami_id  # a data-volume pool's ami_id is its cache snapshot (a bake's, a copy's, a reuse's)
        assert snap
        todo = [r for r in st.plan.pool.distribute.copy_regions(st.plan.region) if r not in st.record.copies]
        if not todo:
            return
        source = describe_snapshot(st.ec2, snap)
        if source is None:
            raise BakeError(f"cache snapshot {snap} is gone: nothing to copy")
        on_copy = [{"ResourceType": "snapshot", "Tags": tags.as_aws(copy_tags(tags.from_aws(source.get("Tags")), st))}]
        # No ClientToken in CopySnapshot: a retried call may start a second copy, which the undo
        # misses only if the bake is killed in between (sweep finds it by its run tag).
        start_copies(st, todo, self.name, lambda ec2, region, encryption: ec2.copy_snapshot(
            SourceSnapshotId=snap, SourceRegion=st.plan.region, Description=source.get("Description", ""),
            TagSpecifications=on_copy, **encryption,
        )["SnapshotId"])
        st.record.base_amis.update({region: st.plan.region_base_amis[region] for region in todo})
        for region in todo:
            copy = st.record.copies[region]
            st.waited(aws.wait(
                st.run.ec2_in(region), "snapshot_completed", cancel=st.run.cancel, timeout=st.plan.pool.ami_timeout,
                delay=15, what=f"copy {copy} in {region} did not complete", hint="raise ami_timeout in bake.toml",
                SnapshotIds=[copy],
            ), self.name)
            st.emit("step", f"copy {copy} in {region} completed; its nodes launch {st.record.base_amis[region]}",
                    step=self.name, data={"region": region, "snapshot_id": copy, "base_ami": st.record.base_amis[region]})

    def cleanup(self, st: BuildState) -> None:
        if st.succeeded:
            return
        failures: list[str] = []
        for region, copy in st.started_copies.items():
            try:
                if resources.delete_snapshot(st.run.ec2_in(region), copy):
                    st.emit("cleanup", f"deleted unfinished copy {copy} in {region}", step=self.name)
            except Exception as e:  # noqa: BLE001 - each region is tried; the refusals are reported together
                failures.append(f"{region}: snapshot {copy}: {aws.describe_error(e) or e}")
        if failures:
            raise BakeError("; ".join(failures))


class StepShareCacheSnapshot:
    """``[distribute] accounts``: create-volume permission on the cache snapshot and its copies, so
    their nodes can map it (the stock AMI is public). Accounts only: EC2 shares a snapshot with
    accounts or everyone, never with an organization (ModifySnapshotAttribute's UserIds)."""

    name = "cache-share"
    title = "sharing the cache snapshot and its copies"

    def run(self, st: BuildState) -> None:
        accounts = st.plan.pool.distribute.accounts
        if not accounts:
            return
        assert st.record.ami_id
        for region, snap in [(st.plan.region, st.record.ami_id), *sorted(st.record.copies.items())]:
            st.run.cancel.check()
            st.run.ec2_in(region).modify_snapshot_attribute(
                SnapshotId=snap, Attribute="createVolumePermission", OperationType="add", UserIds=list(accounts))
            st.emit("step", f"{snap} in {region}: create-volume permission for {len(accounts)} account(s)", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # an unfinished snapshot or copy is deleted by its own step, its permission with it


def cache_distribute_steps() -> list:
    return [StepCopyCacheSnapshot(), StepShareCacheSnapshot()]
