"""Deregister a pool's old AMIs (and delete their snapshots), keeping the N newest.

Only AMIs this tool built are candidates (owned by the account, tagged ``bake:tool`` with
``bake:role=ami`` and ``bake:pool``). An AMI is kept, whatever its age, when it is:
the N newest of its pool; named by the lock (any pool's current or pin, or this pool's
history within N); the image of any launch template version or launch configuration in the
account and region; or the image of any instance that is not terminated. A copy in another
region is a candidate there like any AMI of the pool (``bake prune`` runs region by region);
the lock names it through its entry's ``copies``. A data-volume pool's cache snapshots
(``bake:role=cache-snapshot``, docs/data-volume.md) are candidates like AMIs, seen through
``cache_snapshot_view``; one a launch template version maps is in use. Anything that cannot
be checked (an AccessDenied on a listing) stops the prune before it removes anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from bake import resources, tags
from bake.aws.images import Image, owned_images, tool_snapshots
from bake.cancel import CancelToken
from bake.data_volume import CACHE_SNAPSHOT_ROLE
from bake.errors import BakeError
from bake.lifecycle.common import LIVE_INSTANCE_STATES, error_code, instances, paginate
from bake.resources import why
from bake.model.lock import LockData
from bake.model.times import iso_utc, parse_utc
from bake.progress import Reporter

DEFAULT_KEEP = 3
PRUNED_ROLES = ("ami", CACHE_SNAPSHOT_ROLE)


@dataclass
class Candidate:
    pool: str
    ami_id: str  # or, for a data-volume pool, the cache snapshot's id
    name: str
    created: str  # bake:created-at, else the AMI's CreationDate
    state: str
    snapshots: list[str]
    remove: bool = False
    role: str = "ami"  # or CACHE_SNAPSHOT_ROLE: deleted, not deregistered
    reasons: list[str] = field(default_factory=list)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class PrunePlan:
    keep: int
    candidates: list[Candidate]

    @property
    def removals(self) -> list[Candidate]:
        return [c for c in self.candidates if c.remove]


def tool_cache_snapshots(ec2: Any) -> list[Image]:
    """The tool's cache snapshots (a data-volume pool's caches), each as an image-shaped view."""
    return [cache_snapshot_view(s) for s in tool_snapshots(ec2, role=CACHE_SNAPSHOT_ROLE)]


def cache_snapshot_view(snap: dict[str, Any]) -> Image:
    """A cache snapshot in the shape ``plan_prune`` reads an AMI in: completed is available; the
    snapshot is the candidate itself, so it lists no snapshots of its own."""
    started = parse_utc(snap.get("StartTime"))
    return Image({"ImageId": snap["SnapshotId"], "Name": snap.get("Description", ""), "Tags": snap.get("Tags", []),
                  "State": "available" if snap.get("State") == "completed" else snap.get("State", ""),
                  "CreationDate": iso_utc(started) if started else ""})


def images_in_use(ec2: Any, autoscaling: Any, images: Iterable[Image | dict[str, Any]] = ()) -> dict[str, list[str]]:
    """``{ami: [who uses it]}`` over all launch template versions, launch configurations and
    non-terminated instances of the region, and, among ``images``, those with a snapshot whose
    fast snapshot restore is still enabled in some zone: AWS would delete that snapshot and
    silently disable its fast snapshot restores, which the stack still declares (docs/first-start.md).
    Raises BakeError when a listing is refused."""
    used: dict[str, list[str]] = {}

    def add(ami: str | None, who: str) -> None:
        if ami:
            used.setdefault(ami, []).append(who)

    try:
        for lt in paginate(ec2, "describe_launch_templates", "LaunchTemplates"):
            lt_id, lt_name = lt["LaunchTemplateId"], lt.get("LaunchTemplateName", "")
            for v in paginate(ec2, "describe_launch_template_versions", "LaunchTemplateVersions", LaunchTemplateId=lt_id):
                data, who = v.get("LaunchTemplateData", {}), f"launch template {lt_name or lt_id} v{v.get('VersionNumber')}"
                add(data.get("ImageId"), who)
                for mapping in data.get("BlockDeviceMappings", []):  # a data-volume pool's cache snapshot
                    add(mapping.get("Ebs", {}).get("SnapshotId"), who)
        for lc in paginate(autoscaling, "describe_launch_configurations", "LaunchConfigurations"):
            add(lc.get("ImageId"), f"launch configuration {lc.get('LaunchConfigurationName')}")
        for inst in instances(ec2, [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]):
            add(inst.get("ImageId"), f"instance {inst['InstanceId']} ({inst.get('State', {}).get('Name')})")
        images = [Image.of(i) for i in images]
        if images:
            zones: dict[str, list[str]] = {}
            for item in paginate(ec2, "describe_fast_snapshot_restores", "FastSnapshotRestores"):
                if item.get("State") != "disabled":
                    zones.setdefault(item["SnapshotId"], []).append(item["AvailabilityZone"])
            for img in images:
                # a cache snapshot's view lists no snapshots: it is one
                for snap in img.snapshot_ids or [img.id]:
                    if snap in zones:
                        add(img.id, f"fast snapshot restore still enabled on {snap} in "
                                    f"{', '.join(sorted(zones[snap]))} (disable it first)")
    except ClientError as e:
        raise BakeError(
            f"cannot tell which AMIs are in use ({_refusal_or_error(e)}); "
            "nothing was pruned"
        ) from None
    return used


def _refusal_or_error(e: ClientError) -> str:
    reason = why(e)
    return reason if reason != error_code(e) else f"{reason}: {e.response['Error'].get('Message', '')}"


def _created(image: Image) -> str:
    stamp = parse_utc(image.tags.get(tags.KEY_CREATED)) or parse_utc(image.creation_date)
    return iso_utc(stamp) if stamp else ""


def plan_prune(
    images: Iterable[Image | dict[str, Any]],
    lock: LockData,
    in_use: dict[str, list[str]],
    keep: int = DEFAULT_KEEP,
    pools: list[str] | None = None,
) -> PrunePlan:
    """Decide, per pool, what goes and why the rest stays. Pure: no AWS calls."""
    if keep < 0:
        raise BakeError("--keep must be 0 or more")
    by_pool: dict[str, list[Image]] = {}
    for img in map(Image.of, images):
        t = img.tags
        if t.get(tags.KEY_TOOL) != tags.TOOL or t.get(tags.KEY_ROLE) not in PRUNED_ROLES or not t.get(tags.KEY_POOL):
            continue  # a filter that was not applied must not widen what we touch
        if pools and t[tags.KEY_POOL] not in pools:
            continue
        by_pool.setdefault(t[tags.KEY_POOL], []).append(img)

    protected: dict[str, str] = {}
    for ami, use in lock.ami_uses():
        if use.role == "current":
            protected.setdefault(ami, f"lock: current of {use.pool}")
        elif use.role == "pinned":
            protected.setdefault(ami, f"lock: pinned in {use.pool}")
    out: list[Candidate] = []
    for pool in sorted(by_pool):
        rec = lock.pool(pool)
        history = {ami: i for i, e in enumerate(rec.history[:keep]) for ami in e.amis()}
        imgs = sorted(by_pool[pool], key=lambda i: (_created(i), i.creation_date, i.id), reverse=True)
        for rank, img in enumerate(imgs):
            ami = img.id
            c = Candidate(pool, ami, img.name, _created(img), img.state, img.snapshot_ids, role=img.tags[tags.KEY_ROLE])
            if rank < keep:
                c.reasons.append(f"{rank + 1} of the {keep} newest")
            if ami in protected:
                c.reasons.append(protected[ami])
            if ami in history:
                c.reasons.append(f"lock: history #{history[ami] + 1} (within {keep})")
            if c.state != "available":
                c.reasons.append(f"state {c.state or 'unknown'} (a build may be running; see `bake sweep`)")
            c.reasons.extend(in_use.get(ami, []))
            if not c.reasons:
                c.remove = True
                c.reasons.append(f"older than the {keep} newest, not in the lock, not in use")
            out.append(c)
    return PrunePlan(keep=keep, candidates=out)


def apply_prune(ec2: Any, plan: PrunePlan, reporter: Reporter, cancel: CancelToken | None = None) -> list[str]:
    """Deregister the plan's removals, oldest first, then delete their snapshots.

    A snapshot still backing another registered AMI is left. Returns the failures (empty when
    everything went); a failure on one AMI does not stop the others.
    """
    removals = sorted(plan.removals, key=lambda c: (c.created, c.ami_id))
    gone = {c.ami_id for c in removals}
    backing: set[str] = set()
    for img in owned_images(ec2):
        if img.id not in gone:
            backing.update(img.snapshot_ids)
    failures: list[str] = []
    for c in removals:
        if cancel:
            cancel.check()
        if c.role == CACHE_SNAPSHOT_ROLE:
            try:
                if resources.delete_snapshot(ec2, c.ami_id):
                    reporter.emit("cleanup", f"deleted cache snapshot {c.ami_id}", pool=c.pool, status="done")
            except ClientError as e:
                failures.append(f"snapshot {c.ami_id}: {why(e)}")
            continue
        removal = resources.deregister_image_and_snapshots(ec2, c.ami_id, [s for s in c.snapshots if s not in backing])
        if removal.deregistered:
            reporter.emit("cleanup", f"deregistered {c.ami_id} ({c.name})", pool=c.pool, status="done")
        for snap in c.snapshots:
            if snap in backing:
                reporter.emit("warn", f"kept snapshot {snap}: it backs another AMI", pool=c.pool)
            elif snap in removal.deleted:
                reporter.emit("cleanup", f"deleted snapshot {snap} of {c.ami_id}", pool=c.pool, status="done")
        failures.extend(removal.failures)
    return failures
