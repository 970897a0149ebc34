"""The plan apart from the run (issue 23): the plan is a frozen value, the build state holds it
plus only what the steps create, and one record of the AMI's facts becomes the lock entry."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from bake import tags
from bake.model.config import PoolConfig
from bake.model.images import ResolvedImage
from bake.model.lock import AmiRecord, LockEntry
from bake.model.refs import parse_reference
from bake.plan import PoolPlan
from bake.steps.base import BuildState
from bake.steps.keypair import StepKeyPair
from bake.steps.record import entry_for
from support.states import plan_for, state_for

POOL = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["quay.io/org/app:v1"], prewarm=True)
IMAGE = ResolvedImage(parse_reference("quay.io/org/app:v1"), "sha256:" + "a" * 64, None)


def names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_a_plan_cannot_be_changed_once_made() -> None:
    plan = plan_for(POOL, [IMAGE])
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.action = "skip"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.existing = AmiRecord("ami-0123")  # type: ignore[misc]


def test_the_build_state_copies_no_field_of_the_plan() -> None:
    """A step reads its inputs from ``st.plan``; the state has only what the run creates."""
    assert "plan" in names(BuildState)
    assert names(PoolPlan) & names(BuildState) == set()
    # Nor does it hide one behind a field of the AMI's record.
    assert names(PoolPlan) & names(AmiRecord) == set()


def test_every_field_of_the_record_is_the_lock_entry_field_of_that_name() -> None:
    """A new fact of the AMI is a field here and in LockEntry: entry_for passes it on unchanged."""
    assert names(AmiRecord) - {"image_ids"} <= set(LockEntry.model_fields)


def test_the_lock_entry_is_the_plans_facts_and_the_record() -> None:
    plan = plan_for(POOL, [IMAGE], aliases={IMAGE.ref.original: ["mirror.example/org/app:v1"]},
                    image_sizes={IMAGE.ref.original: 1234})
    made = AmiRecord("ami-0bake", snapshot_ids=["snap-1"], snapshot_gib=20, cache_bytes=4321,
                     copies={"eu-west-1": "ami-0copy"}, image_ids={IMAGE.ref.original: "sha256:" + "c" * 64},
                     runtime_version="containerd 2.1.9", gpu_driver_version="570.86.15",
                     cache_snapshot_id="snap-data", data_device="/dev/xvdb", base_amis={"eu-west-1": "ami-0stock"})
    entry = entry_for(plan, made)
    recorded = entry.model_dump()
    for name in names(AmiRecord) - {"image_ids"}:
        assert recorded[name] == getattr(made, name), name
    assert (entry.region, entry.fingerprint, entry.base_ami) == ("us-east-1", "sha256:f", "ami-ekslinux")
    assert (entry.runtime, entry.prewarm, entry.compressed_bytes) == ("containerd", True, 1234)
    [image] = entry.images
    assert (image.ref, image.digest, image.image_id, image.aliases) == (
        "quay.io/org/app:v1", IMAGE.digest, "sha256:" + "c" * 64, ["mirror.example/org/app:v1"])
    # A pool that distributes nothing writes no copies.
    assert entry_for(plan, AmiRecord("ami-0bake")).copies is None


def test_resources_are_tagged_with_the_runs_time(in_process_ec2) -> None:
    """The run carries its start as a datetime: the tags say it, nothing parses it back from the id."""
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    st = state_for(plan_for(POOL), in_process_ec2, started_at=at, id="20260304T050607Z-abcdef")
    StepKeyPair().run(st)
    try:
        [kp] = in_process_ec2.describe_key_pairs(KeyNames=[st.key_name])["KeyPairs"]
        assert tags.from_aws(kp["Tags"])[tags.KEY_CREATED] == "2026-03-04T05:06:07Z"
    finally:
        StepKeyPair().cleanup(st)
