"""The AWS resources a bake creates or names, and how each is looked up and removed.

One vocabulary for the steps' undo (``bake/steps/``) and for ``sweep`` and ``prune``
(``bake/lifecycle/``): "never leave a paid instance running" is ``terminate_instances``, and
nowhere else. Clients stay in ``bake.aws``, what AWS says of an image in ``bake.aws.images``,
and every wait runs through ``bake.polling.wait_until``.

Every removal tolerates a resource that is already gone (it returns False then) and raises any
other AWS error as botocore raised it: the caller decides whether that is a step's cleanup
error or one line of a sweep's report.

Every function takes the client it works through: an AMI copy in another region is removed by
the same ``deregister_image_and_snapshots`` through that region's client (``bake.steps.distribute``).

Adding a resource (a fast snapshot restore, an SSM parameter): its "not found"
codes go into ``NOT_FOUND``; its removal goes in a section of its own below, built on
``_unless_gone`` (and on ``bake.aws.wait`` or ``bake.polling.wait_until`` when it has to wait);
then the step that creates it calls that removal in its ``cleanup``, and ``bake.lifecycle.sweep``
finds it by its tags (``bake.aws.images.tool_filters``; a kind in ``KINDS``) and removes it with
the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from bake import aws
from bake.aws import images
from bake.cancel import CancelToken
from bake.polling import QUICK, WaitStats, schedule_for, wait_until

# What AWS answers when the thing a call names does not exist (or no longer does). One set for
# every resource: a code is specific to its resource, so sharing the set never widens a check.
NOT_FOUND = frozenset({
    "InvalidInstanceID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
    "InvalidKeyPair.NotFound",
    "InvalidSnapshot.NotFound",
    "InvalidSubnetID.NotFound",
    "ParameterNotFound",  # SSM
}) | images.IMAGE_NOT_FOUND


def is_not_found(exc: BaseException) -> bool:
    return aws.error_code(exc) in NOT_FOUND


def why(exc: BaseException) -> str:
    """What to report for a call that failed: a refusal in full (action, caller, the policy
    command), else the error code."""
    from bake.iam.refusal import message

    return message(exc) or aws.error_code(exc) or ""


def _unless_gone(call: Callable[..., Any], **kwargs: Any) -> bool:
    """Make the call; False (not an error) when what it names is already gone."""
    try:
        call(**kwargs)
    except Exception as e:
        if is_not_found(e):
            return False
        raise
    return True


# --- instances ------------------------------------------------------------------------------

TERMINATE_TIMEOUT = 600.0


def terminate_instances(
    ec2: Any,
    instance_ids: Iterable[str],
    *,
    cancel: CancelToken | None = None,
    timeout: float = TERMINATE_TIMEOUT,
    delay: float = 5.0,
    on_wait: Callable[[WaitStats], None] | None = None,
) -> list[str]:
    """Terminate the instances and wait until they are terminated; returns those that existed.

    Without ``cancel`` the wait cannot be interrupted: a step's undo must not leave a
    half-terminated builder. ``sweep`` passes its token: its instances are terminating by then.
    Each is terminated on its own, so one already gone does not fail the others. ``on_wait``
    receives the wait's figures (a bake reports them per wait).
    """
    ids = [i for i in instance_ids if _unless_gone(ec2.terminate_instances, InstanceIds=[i])]
    if ids:
        stats = aws.wait(
            ec2, "instance_terminated", cancel=cancel or CancelToken(), timeout=timeout, delay=delay,
            what=f"instance{'s' if len(ids) > 1 else ''} {', '.join(ids)} did not terminate", InstanceIds=ids,
        )
        if on_wait:
            on_wait(stats)
    return ids


# --- security groups ------------------------------------------------------------------------

GROUP_TIMEOUT = 300.0


def delete_security_group(
    ec2: Any,
    group_id: str,
    *,
    cancel: CancelToken | None = None,
    timeout: float = GROUP_TIMEOUT,
    delay: float = 5.0,
) -> bool:
    """Delete the group; False when it was already gone.

    A group cannot go while an instance's network interface still uses it, and a terminated
    instance's interface lingers a while: DependencyViolation is retried until ``timeout``,
    quickly at first (``bake.polling``: the interface is often gone within seconds), never
    more than ``delay`` apart.
    """
    last: list[BaseException] = []

    def attempt() -> bool | None:
        try:
            return _unless_gone(ec2.delete_security_group, GroupId=group_id)
        except Exception as e:
            if aws.error_code(e) != "DependencyViolation":
                raise
            last[:] = [e]
            return None

    def expired() -> bool:
        raise last[0]

    schedule = replace(schedule_for("security_group_deletable", ceiling=delay), floor=min(delay, QUICK))
    return wait_until(attempt, schedule, cancel, timeout=timeout, on_timeout=expired)


# --- key pairs ------------------------------------------------------------------------------


def delete_key_pair(ec2: Any, key_name: str) -> bool:
    # By name: every EC2 implementation (moto too) honours it; not every one takes the id.
    return _unless_gone(ec2.delete_key_pair, KeyName=key_name)


# --- AMIs and their snapshots ---------------------------------------------------------------


def image_available(ec2: Any, ami_id: str) -> bool:
    image = images.describe(ec2, ami_id)
    return image is not None and image.state == "available"


def deregister_image(ec2: Any, ami_id: str) -> bool:
    return _unless_gone(ec2.deregister_image, ImageId=ami_id)


def delete_snapshot(ec2: Any, snapshot_id: str) -> bool:
    return _unless_gone(ec2.delete_snapshot, SnapshotId=snapshot_id)


@dataclass
class ImageRemoval:
    ami_id: str
    snapshots: list[str]  # the snapshots it was asked to delete
    deregistered: bool = False  # False: already gone, or refused (see failures)
    deleted: list[str] = field(default_factory=list)  # snapshots deleted (not those already gone)
    failures: list[str] = field(default_factory=list)  # "AMI ami-…: WHY", "snapshot snap-… (of ami-…): WHY" (see why)


def deregister_image_and_snapshots(ec2: Any, ami_id: str, snapshots: Iterable[str] | None = None) -> ImageRemoval:
    """Deregister the AMI, then delete ``snapshots`` (by default its own, read before it goes).

    Already gone is fine. AWS refusals are returned in ``failures``, not raised: an AMI that
    cannot be deregistered keeps its snapshots (they still back it), and one snapshot's
    refusal does not stop the others.
    """
    out = ImageRemoval(ami_id, list(snapshots) if snapshots is not None else images.snapshot_ids_of(ec2, ami_id))
    try:
        out.deregistered = deregister_image(ec2, ami_id)
    except Exception as e:
        if aws.error_code(e) is None:
            raise
        out.failures.append(f"AMI {ami_id}: {why(e)}")
        return out
    for snap in out.snapshots:
        try:
            if delete_snapshot(ec2, snap):
                out.deleted.append(snap)
        except Exception as e:
            if aws.error_code(e) is None:
                raise
            out.failures.append(f"snapshot {snap} (of {ami_id}): {why(e)}")
    return out
