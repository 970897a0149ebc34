"""Find and remove what a build that died without cleaning up left behind.

Everything a bake creates carries the tags of ``bake.tags`` (``bake:tool``, ``bake:run-id``,
``bake:role``, ``bake:created-at``). A leftover is a resource with ``bake:tool`` whose run
started longer ago than the threshold:

- an instance that is not terminated, a security group, a key pair;
- an AMI that is **not** ``available`` (pending, failed, ...): an available AMI is a good
  build, which only ``prune`` may retire;
- a snapshot that backs no registered AMI (or only AMIs this sweep deregisters), unless it is a
  data-volume pool's completed cache snapshot (``bake:role=cache-snapshot``): that is a finished
  build, as an available AMI is.

Never touched: anything the lock names (and the snapshots behind it), anything without the
tool's tag, and every resource of a run that has any resource fresher than the threshold (a
build still running). Removal goes oldest first, in dependency order: terminate instances and
wait, then security groups (free only once the instances are gone), key pairs, AMIs, snapshots.

``read_inventory`` makes the AWS reads and ``classify`` decides on them alone (no AWS call), as
``prune``'s ``plan_prune`` does: tests/unit/test_sweep_classify.py holds the decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bake import resources, tags
from bake.aws.images import Image, owned_images, tool_filters, tool_snapshots
from bake.cancel import CancelToken
from bake.errors import BakeError
from bake.data_volume import CACHE_SNAPSHOT_ROLE
from bake.lifecycle.common import LIVE_INSTANCE_STATES, format_age, instances, paginate
from bake.resources import why
from bake.model.times import OLDEST, parse_utc, utc_now
from bake.progress import Reporter

DEFAULT_OLDER_THAN = "2h"
KINDS = ("instance", "security-group", "key-pair", "image", "snapshot")


@dataclass
class Resource:
    kind: str  # one of KINDS
    id: str
    name: str
    run_id: str
    pool: str
    created: datetime | None
    detail: str = ""
    kept: bool = False  # tagged by build --keep-on-failure

    def age(self, now: datetime) -> timedelta | None:
        return now - self.created if self.created else None


@dataclass
class SweepPlan:
    leftovers: list[Resource]  # in removal order
    fresh: list[Resource]  # a build still running: left alone
    kept: list[tuple[Resource, str]]  # tagged, but not a leftover, and why
    now: datetime


def _resource(kind: str, rid: str, name: str, tag_list: Any, fallback_time: Any, detail: str = "") -> Resource:
    t = tags.from_aws(tag_list)
    created = parse_utc(t.get(tags.KEY_CREATED)) or parse_utc(fallback_time)
    return Resource(kind, rid, name, t.get(tags.KEY_RUN, ""), t.get(tags.KEY_POOL, ""), created, detail,
                    kept=tags.KEY_KEPT in t)


@dataclass
class Inventory:
    """What a sweep reads of one region (``read_inventory``); ``classify`` decides on it alone."""

    instances: list[dict[str, Any]] = field(default_factory=list)  # the tool's, not terminated
    security_groups: list[dict[str, Any]] = field(default_factory=list)  # the tool's
    key_pairs: list[dict[str, Any]] = field(default_factory=list)  # the tool's
    images: list[Image] = field(default_factory=list)  # every AMI the account owns: which snapshots back one
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # the tool's


def read_inventory(ec2: Any) -> Inventory:
    """The AWS reads: everything the tool tagged in the client's region, and every owned AMI."""
    tool = tool_filters()
    live = [*tool, {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    return Inventory(
        instances=list(instances(ec2, live)),
        security_groups=list(paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=tool)),
        # DescribeKeyPairs has no paginator: it returns every key pair at once.
        key_pairs=ec2.describe_key_pairs(Filters=tool).get("KeyPairs", []),
        images=owned_images(ec2),
        snapshots=tool_snapshots(ec2),
    )


def _finished_cache(snap: dict[str, Any]) -> bool:
    """A data-volume pool's cache snapshot that completed: like an available AMI, prune's to retire."""
    return (tags.from_aws(snap.get("Tags")).get(tags.KEY_ROLE) == CACHE_SNAPSHOT_ROLE
            and snap.get("State") == "completed")


def find_leftovers(
    ec2: Any,
    older_than: timedelta,
    protected_amis: dict[str, str] | None = None,
    now: datetime | None = None,
) -> SweepPlan:
    """List the tool's resources and sort them into leftovers, fresh runs and keepers."""
    return classify(read_inventory(ec2), older_than, protected_amis or {}, now or utc_now())


def classify(inv: Inventory, older_than: timedelta, protected_amis: dict[str, str], now: datetime) -> SweepPlan:
    """Sort what ``read_inventory`` found into leftovers (in removal order), fresh runs and
    keepers, with the reason each is kept. Pure: no AWS calls."""
    found: list[Resource] = []
    kept: list[tuple[Resource, str]] = []

    for inst in inv.instances:
        found.append(_resource("instance", inst["InstanceId"], tags.from_aws(inst.get("Tags")).get("Name", ""), inst.get("Tags"),
                               inst.get("LaunchTime"), inst.get("State", {}).get("Name", "")))
    for sg in inv.security_groups:
        found.append(_resource("security-group", sg["GroupId"], sg.get("GroupName", ""), sg.get("Tags"), None))
    for kp in inv.key_pairs:
        found.append(_resource("key-pair", kp.get("KeyPairId") or kp["KeyName"], kp["KeyName"], kp.get("Tags"), kp.get("CreateTime")))

    doomed_images: set[str] = set()
    for img in inv.images:
        if not img.by_tool:
            continue
        r = _resource("image", img.id, img.name, img.data.get("Tags"), img.creation_date, img.state)
        if img.id in protected_amis:
            kept.append((r, f"in the lock ({protected_amis[img.id]})"))
        elif img.state == "available":
            kept.append((r, "available: a finished build; retire it with `bake prune`"))
        else:
            found.append(r)
            doomed_images.add(img.id)

    # A run kept by `build --keep-on-failure` is over: its resources go whatever their age.
    kept_runs = {r.run_id for r in found if r.run_id and r.kept}
    fresh_runs = {r.run_id for r in found if r.run_id and r.run_id not in kept_runs
                  and (r.created is None or now - r.created < older_than)}
    leftovers: list[Resource] = []
    fresh: list[Resource] = []
    for r in found:
        if r.run_id in kept_runs:
            leftovers.append(r)
        elif r.created is None or now - r.created < older_than or (r.run_id and r.run_id in fresh_runs):
            fresh.append(r)
        else:
            leftovers.append(r)
    doomed_images &= {r.id for r in leftovers}

    # Snapshots: tagged ones that back no AMI that stays, plus those behind AMIs we deregister.
    backing: dict[str, str] = {}
    for img in inv.images:
        if img.id not in doomed_images:
            for snap in img.snapshot_ids:
                backing.setdefault(snap, img.id)
    snapshots: dict[str, Resource] = {}
    for snap in inv.snapshots:
        r = _resource("snapshot", snap["SnapshotId"], snap.get("Description", "")[:60], snap.get("Tags"), snap.get("StartTime"))
        if snap["SnapshotId"] in backing:
            kept.append((r, f"backs {backing[snap['SnapshotId']]}"))
        elif snap["SnapshotId"] in protected_amis:  # a data-volume pool's cache (docs/data-volume.md)
            kept.append((r, f"in the lock ({protected_amis[snap['SnapshotId']]})"))
        elif _finished_cache(snap):
            kept.append((r, "a completed cache snapshot: a finished build; retire it with `bake prune`"))
        elif r.created is None or now - r.created < older_than or (r.run_id and r.run_id in fresh_runs):
            fresh.append(r)
        else:
            snapshots[r.id] = r
    for img in inv.images:
        if img.id in doomed_images:
            parent = next(x for x in leftovers if x.id == img.id)
            for snap in img.snapshot_ids:
                if snap not in backing and snap not in snapshots:
                    snapshots[snap] = Resource("snapshot", snap, f"of {img.id}", parent.run_id, parent.pool,
                                               parent.created)
    leftovers.extend(snapshots.values())

    order = {k: i for i, k in enumerate(KINDS)}
    leftovers.sort(key=lambda r: (order[r.kind], r.created or OLDEST, r.id))
    fresh.sort(key=lambda r: (order[r.kind], r.created or OLDEST, r.id))
    return SweepPlan(leftovers=leftovers, fresh=fresh, kept=kept, now=now)


def remove_leftovers(
    ec2: Any,
    plan: SweepPlan,
    reporter: Reporter,
    cancel: CancelToken,
    wait_timeout: float = 900.0,
    delay: float = 5.0,
) -> list[str]:
    """Remove the plan's leftovers in order. Returns the failures (empty when all went)."""
    failures: list[str] = []
    by_kind = {k: [r for r in plan.leftovers if r.kind == k] for k in KINDS}

    def done(r: Resource, verb: str) -> None:
        reporter.emit("cleanup", f"{verb} {r.kind} {r.id}" + (f" ({r.name})" if r.name else ""), pool=r.pool or None,
                      status="done", data={"run_id": r.run_id})

    ids = [r.id for r in by_kind["instance"]]
    if ids:
        cancel.check()
        try:
            terminated = resources.terminate_instances(ec2, ids, cancel=cancel, timeout=wait_timeout, delay=delay)
            for r in by_kind["instance"]:
                if r.id in terminated:
                    done(r, "terminated")
        except (ClientError, BakeError) as e:
            failures.append(f"instances {', '.join(ids)}: {why(e) or e}")
            # Groups and key pairs of a run whose instance did not go are still in use.
            stuck = {r.run_id for r in by_kind["instance"]}
            for kind in ("security-group", "key-pair"):
                by_kind[kind] = [r for r in by_kind[kind] if r.run_id not in stuck]

    # One deadline for all groups: each waits only for its instance's interface to go.
    deadline = time.monotonic() + wait_timeout
    # (kind, how to remove one: False when already gone, how a failure names it, verb)
    removals: list[tuple[str, Callable[[Resource], bool], Callable[[Resource], str], str]] = [
        ("security-group", lambda r: resources.delete_security_group(
            ec2, r.id, cancel=cancel, timeout=max(0.0, deadline - time.monotonic()), delay=delay),
         lambda r: f"security group {r.id}", "deleted"),
        ("key-pair", lambda r: resources.delete_key_pair(ec2, r.name), lambda r: f"key pair {r.name}", "deleted"),
        ("image", lambda r: resources.deregister_image(ec2, r.id), lambda r: f"AMI {r.id}", "deregistered"),
        ("snapshot", lambda r: resources.delete_snapshot(ec2, r.id), lambda r: f"snapshot {r.id}", "deleted"),
    ]
    for kind, remove, label, verb in removals:
        for r in by_kind[kind]:
            cancel.check()
            try:
                if remove(r):
                    done(r, verb)
            except ClientError as e:
                failures.append(f"{label(r)}: {why(e)}")
    return failures


def describe(r: Resource, now: datetime) -> list[str]:
    age = r.age(now)
    return [r.kind, r.id, r.name or "-", r.pool or "-", r.run_id or "-", format_age(age) if age is not None else "?", r.detail or ""]
