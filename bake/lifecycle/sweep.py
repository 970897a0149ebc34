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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from bake import resources, tags
from bake.cancel import CancelToken
from bake.errors import BakeError
from bake.data_volume import CACHE_SNAPSHOT_ROLE
from bake.lifecycle.common import LIVE_INSTANCE_STATES, format_age, instances, paginate, parse_time
from bake.resources import why
from bake.progress import Reporter

DEFAULT_OLDER_THAN = "2h"
KINDS = ("instance", "security-group", "key-pair", "image", "snapshot")
_TOOL_FILTER = [{"Name": f"tag:{tags.KEY_TOOL}", "Values": [tags.TOOL]}]


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
    created = parse_time(t.get(tags.KEY_CREATED)) or parse_time(fallback_time)
    return Resource(kind, rid, name, t.get(tags.KEY_RUN, ""), t.get(tags.KEY_POOL, ""), created, detail,
                    kept=tags.KEY_KEPT in t)


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
    now = now or datetime.now(timezone.utc)
    protected_amis = protected_amis or {}
    found: list[Resource] = []
    kept: list[tuple[Resource, str]] = []

    live = [*_TOOL_FILTER, {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    for inst in instances(ec2, live):
        found.append(_resource("instance", inst["InstanceId"], tags.from_aws(inst.get("Tags")).get("Name", ""), inst.get("Tags"),
                               inst.get("LaunchTime"), inst.get("State", {}).get("Name", "")))
    for sg in paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=_TOOL_FILTER):
        found.append(_resource("security-group", sg["GroupId"], sg.get("GroupName", ""), sg.get("Tags"), None))
    # DescribeKeyPairs has no paginator: it returns every key pair at once.
    for kp in ec2.describe_key_pairs(Filters=_TOOL_FILTER).get("KeyPairs", []):
        found.append(_resource("key-pair", kp.get("KeyPairId") or kp["KeyName"], kp["KeyName"], kp.get("Tags"), kp.get("CreateTime")))

    # AMIs: every AMI of the account, to know which snapshots are still needed.
    all_images = list(paginate(ec2, "describe_images", "Images", Owners=["self"]))
    doomed_images: set[str] = set()
    for img in all_images:
        t = tags.from_aws(img.get("Tags"))
        if t.get(tags.KEY_TOOL) != tags.TOOL:
            continue
        r = _resource("image", img["ImageId"], img.get("Name", ""), img.get("Tags"), img.get("CreationDate"), img.get("State", ""))
        if img["ImageId"] in protected_amis:
            kept.append((r, f"in the lock ({protected_amis[img['ImageId']]})"))
        elif img.get("State") == "available":
            kept.append((r, "available: a finished build; retire it with `bake prune`"))
        else:
            found.append(r)
            doomed_images.add(img["ImageId"])

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
    for img in all_images:
        if img["ImageId"] not in doomed_images:
            for snap in resources.snapshot_ids(img):
                backing.setdefault(snap, img["ImageId"])
    snapshots: dict[str, Resource] = {}
    for snap in paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=_TOOL_FILTER):
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
    for img in all_images:
        if img["ImageId"] in doomed_images:
            parent = next(x for x in leftovers if x.id == img["ImageId"])
            for snap in resources.snapshot_ids(img):
                if snap not in backing and snap not in snapshots:
                    snapshots[snap] = Resource("snapshot", snap, f"of {img['ImageId']}", parent.run_id, parent.pool,
                                               parent.created)
    leftovers.extend(snapshots.values())

    order = {k: i for i, k in enumerate(KINDS)}
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    leftovers.sort(key=lambda r: (order[r.kind], r.created or oldest, r.id))
    fresh.sort(key=lambda r: (order[r.kind], r.created or oldest, r.id))
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
