"""Whether a pool is baked: bake, skip, stay pinned, reuse an AMI that already has its fingerprint,
or only copy its current AMI to distribute regions that lack one.

Pure: what it needs to know from AWS (is the lock's AMI still available, which AMI carries the
fingerprint tag) the caller (``bake.build``) passes in as look-ups, asked only when the decision
needs them: a pin or a skip, the common case of every plan, costs no DescribeImages by tag, and
a changed fingerprint no look-up of the lock's AMI. What it needs from the config (which
distribute regions lack a copy) comes as a plain value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bake import tags
from bake.model.lock import PoolLock

# copy: the lock's AMI is current, but a region of [pools.NAME.distribute] has no copy of it yet.
Action = Literal["bake", "skip", "pinned", "reuse", "copy"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    ami_id: str | None = None  # the AMI a skip, pin, reuse or copy keeps
    copies: dict[str, str] = field(default_factory=dict)  # region -> copy the lock already names (skip, copy)


def decide(
    pool: str,
    fingerprint: str,
    region: str,
    record: PoolLock,
    *,
    lock_ami_available: Callable[[], bool],
    ami_with_fingerprint: Callable[[], str | None],
    missing_copies: Sequence[str] = (),
) -> Decision:
    """The pool's action, and why.

    ``lock_ami_available()``: the record's current AMI exists and is available in ``region``.
    ``ami_with_fingerprint()``: the pool's newest available AMI tagged with ``fingerprint``, if any.
    ``missing_copies``: the pool's distribute regions with no copy in the record's current entry.

    A pin holds while its fingerprint is the pool's; a current entry with the fingerprint is
    skipped while its AMI is available (copied first when a distribute region lacks a copy:
    regions only grow copies here, one that left the list is prune's business); otherwise an AMI found by the fingerprint tag (a lost
    lock, or a lock AMI gone) is recorded instead of baking again.
    """
    current, pin = record.current, record.pinned
    if pin and pin.fingerprint == fingerprint:
        return Decision(
            "pinned",
            f"pinned to {pin.ami_id} by {pin.reason} at {pin.at}; `python -m bake rollback {pool} --unpin` releases it",
            pin.ami_id,
        )
    reason = ""
    if current and current.fingerprint == fingerprint and current.region == region:
        if lock_ami_available():
            copies = dict(current.copies or {})
            if missing_copies:
                return Decision(
                    "copy",
                    f"{current.ami_id} is up to date but has no copy in {', '.join(missing_copies)} yet",
                    current.ami_id, copies,
                )
            return Decision("skip", f"up to date: {current.ami_id} has this fingerprint", current.ami_id, copies)
        reason = f"the lock's {current.ami_id} is no longer available"
    if found := ami_with_fingerprint():
        return Decision(
            "reuse", f"{found} already has this fingerprint (tag {tags.KEY_FINGERPRINT}); recording it", found,
        )
    reason = reason or ("new pool" if not current else "base AMI, images or recipe changed")
    if pin:
        reason += f"; the pin on {pin.ami_id} lapses (the images changed since it was set)"
    return Decision("bake", reason)
