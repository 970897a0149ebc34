"""Distribute the AMI: a copy in each of the pool's other regions (encrypted with that region's
KMS key when one is named), then launch permission for the accounts, organizations and OUs on
the AMI and every copy, and create-volume permission on the snapshots for the accounts.

The copies' undo removes the copies this run started (never one an earlier bake recorded)
unless the bake succeeded; it is registered before the first CopyImage, and each copy's id is
kept the moment AWS returns it, before it is waited on.

A copy and its snapshots are tagged by CopyImage itself (its TagSpecifications): no copy is ever
untagged, so ``sweep`` finds a killed run's copies, and the bake role may tag images in the copy
regions only as part of CopyImage (``ec2:CreateAction``, docs/iam.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from bake import aws, resources, tags
from bake.aws import images
from bake.errors import BakeError
from bake.steps.base import BuildState


def copy_token(st: BuildState, region: str) -> str:
    """CopyImage's ClientToken (at most 64 characters): a retried call of this run starts no
    second copy."""
    return hashlib.sha256(f"{st.run.id}/{st.plan.pool.name}/{st.record.ami_id}/{region}".encode()).hexdigest()[:64]


def copy_tags(source: dict[str, str], st: BuildState) -> dict[str, str]:
    """The original's tags, this run's id and time (a sweep finds a killed run's copies by them),
    and where the copy came from; image tags give way when AWS's 50-tag limit is reached."""
    out = {**source, tags.KEY_RUN: st.run.id, tags.KEY_CREATED: st.run.created_at,
           tags.KEY_SOURCE_AMI: st.record.ami_id or "", tags.KEY_SOURCE_REGION: st.plan.region}
    images = sorted((k for k in out if k.startswith(tags.KEY_IMAGE_PREFIX)),
                    key=lambda k: int(k.removeprefix(tags.KEY_IMAGE_PREFIX)), reverse=True)
    for key in images[: max(0, len(out) - tags.TAGS_MAX)]:
        del out[key]
    return out


def start_copies(st: BuildState, todo: list[str], step: str,
                 start: Callable[[Any, str, dict[str, Any]], str]) -> None:
    """Start a copy of the record's AMI (or cache snapshot) in each region of ``todo``:
    ``start(ec2 there, region, encryption arguments)`` returns the copy's id. Every copy is started
    before any is waited for (AWS copies them at the same time), each encrypted with its region's
    key when ``kms_key_ids`` names one, and each id is kept the moment AWS returns it (the undo)."""
    keys = st.plan.pool.distribute.kms_key_ids
    for region in todo:
        st.run.cancel.check()
        encryption = {"Encrypted": True, "KmsKeyId": keys[region]} if region in keys else {}
        try:
            copy = start(st.run.ec2_in(region), region, encryption)
        except Exception as e:
            raise BakeError(f"copy of {st.record.ami_id} to {region} failed: {aws.describe_error(e) or e}") from None
        st.started_copies[region] = st.record.copies[region] = copy
        st.emit("step", f"copy {copy} in {region} started"
                + (f" (encrypted with {keys[region]})" if region in keys else ""), step=step)


class StepCopyAmi:
    name = "copies"
    title = "copying the AMI to other regions"

    def run(self, st: BuildState) -> None:
        assert st.record.ami_id
        todo = [r for r in st.plan.pool.distribute.copy_regions(st.plan.region) if r not in st.record.copies]
        if not todo:
            return
        source = images.describe(st.ec2, st.record.ami_id)
        if source is None:
            raise BakeError(f"AMI {st.record.ami_id} is gone: nothing to copy")
        aws_tags = tags.as_aws(copy_tags(source.tags, st))
        on_copy = [{"ResourceType": kind, "Tags": aws_tags} for kind in ("image", "snapshot")]
        start_copies(st, todo, self.name, lambda ec2, region, encryption: ec2.copy_image(
            SourceImageId=st.record.ami_id, SourceRegion=st.plan.region, Name=source.name,
            Description=source.description, ClientToken=copy_token(st, region),
            TagSpecifications=on_copy, **encryption,
        )["ImageId"])
        for region in todo:
            ami, ec2 = st.record.copies[region], st.run.ec2_in(region)
            aws.wait(ec2, "image_available", cancel=st.run.cancel, timeout=st.plan.pool.ami_timeout, delay=15,
                     what=f"copy {ami} in {region} did not become available", hint="raise ami_timeout in bake.toml",
                     ImageIds=[ami])
            st.emit("step", f"copy {ami} in {region} available", step=self.name, data={"region": region, "ami_id": ami})

    def cleanup(self, st: BuildState) -> None:
        if st.succeeded:
            return
        failures: list[str] = []
        # One region's refusal does not keep the other regions' copies: each is tried, then all
        # refusals are reported together.
        for region, ami in st.started_copies.items():
            removal = resources.deregister_image_and_snapshots(st.run.ec2_in(region), ami)
            if removal.failures:
                failures += [f"{region}: {f}" for f in removal.failures]
                continue
            st.emit("cleanup", f"deregistered unfinished copy {ami} in {region} and {len(removal.snapshots)} snapshot(s)",
                    step=self.name)
        if failures:
            raise BakeError("; ".join(failures))


def launch_permission(st: BuildState) -> list[dict[str, str]]:
    d = st.plan.pool.distribute
    return ([{"UserId": a} for a in d.accounts] + [{"OrganizationArn": o} for o in d.organizations]
            + [{"OrganizationalUnitArn": u} for u in d.organizational_units])


class StepShareAmi:
    name = "share"
    title = "sharing the AMI and its copies"

    def run(self, st: BuildState) -> None:
        if not st.plan.pool.distribute.shared:
            return
        assert st.record.ami_id
        accounts = st.plan.pool.distribute.accounts
        for region, ami in [(st.plan.region, st.record.ami_id), *sorted(st.record.copies.items())]:
            st.run.cancel.check()
            ec2 = st.run.ec2_in(region)
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": launch_permission(st)})
            snaps = images.snapshot_ids_of(ec2, ami)
            for snap in snaps if accounts else []:
                ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                              OperationType="add", UserIds=accounts)
            st.emit("step", f"{ami} in {region}: launch permission for {len(launch_permission(st))} "
                    f"principal(s), {len(snaps) if accounts else 0} snapshot(s) shared", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # an unfinished AMI or copy is deregistered by its own step, its permissions with it
