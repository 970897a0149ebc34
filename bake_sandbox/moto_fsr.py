"""EBS fast snapshot restore for the sandbox's moto server, which does not implement it.

moto (5.2) answers ``EnableFastSnapshotRestores``, ``DisableFastSnapshotRestores`` and
``DescribeFastSnapshotRestores`` with NotImplementedError, so a stack holding
``aws_ebs_fast_snapshot_restore`` could not apply against the sandbox. This module adds the three
actions to moto's EC2 responses, inside the moto server process, with state kept per account and
region on the EC2 backend:

- Enable: every (snapshot, zone) pair becomes ``enabled`` at once (moto's AMIs and snapshots are
  ready at once too; AWS passes through ``enabling`` and ``optimizing`` first). A snapshot that
  does not exist is ``InvalidSnapshot.NotFound``; a zone outside the region is reported in
  ``Unsuccessful``, as AWS reports per-item failures.
- Disable: the pair becomes ``disabled`` and stays listed, as on AWS, where Terraform's provider
  waits to see ``disabled`` before it considers the resource destroyed.
- Describe: every pair ever enabled, with the filters ``snapshot-id``, ``availability-zone`` and
  ``state``.

What it does not do: move through the intermediate states, bill, keep a credit bucket, or disable
a snapshot's fast snapshot restores when ``DeleteSnapshot`` deletes it, as AWS does (the tool's
``prune`` checks Describe itself and keeps such an AMI).
"""

from __future__ import annotations

from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

def _store(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(snapshot id, zone) -> the item Describe returns; kept on the account/region's backend."""
    store = getattr(backend, "_bake_fast_snapshot_restores", None)
    if store is None:
        store = backend._bake_fast_snapshot_restores = {}
    return store


def _zones(backend: Any) -> set[str]:
    return {z.name for z in backend.describe_availability_zones()}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _each_pair(snapshot_ids: list[str], zones: list[str],
               act: Callable[[str, str], dict[str, Any] | str]) -> dict[str, list[dict[str, Any]]]:
    """AWS's answer shape: an item per pair done, the failures grouped per snapshot. ``act``
    returns the pair's item, or why it failed."""
    ok: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for snap in snapshot_ids:
        errors = []
        for zone in zones:
            result = act(snap, zone)
            if isinstance(result, str):
                errors.append({"AvailabilityZone": zone, "Error": {"Code": "InvalidParameterValue", "Message": result}})
            else:
                ok.append(dict(result))
        if errors:
            failed.append({"SnapshotId": snap, "FastSnapshotRestoreStateErrors": errors})
    return {"Successful": ok, "Unsuccessful": failed}


def enable(backend: Any, snapshot_ids: list[str], zones: list[str]) -> dict[str, list[dict[str, Any]]]:
    for snap in snapshot_ids:
        backend.get_snapshot(snap)  # InvalidSnapshot.NotFound, as AWS
    valid = _zones(backend)
    store = _store(backend)

    def act(snap: str, zone: str) -> dict[str, Any] | str:
        if zone not in valid:
            return f"{zone} is not a zone of {backend.region_name}"
        item = store.get((snap, zone))
        if item is None or item["State"] == "disabled":
            now = _now()
            item = store[(snap, zone)] = {
                "SnapshotId": snap, "AvailabilityZone": zone, "State": "enabled",
                "StateTransitionReason": "Client.UserInitiated", "OwnerId": backend.account_id,
                "EnablingTime": now, "OptimizingTime": now, "EnabledTime": now,
            }
        return item

    return _each_pair(snapshot_ids, zones, act)


def disable(backend: Any, snapshot_ids: list[str], zones: list[str]) -> dict[str, list[dict[str, Any]]]:
    store = _store(backend)

    def act(snap: str, zone: str) -> dict[str, Any] | str:
        item = store.get((snap, zone))
        if item is None:
            return f"fast snapshot restore is not enabled for {snap} in {zone}"
        now = _now()
        item.update(State="disabled", StateTransitionReason="Client.UserInitiated - Lifecycle state transition",
                    DisablingTime=now, DisabledTime=now)
        return item

    return _each_pair(snapshot_ids, zones, act)


def enabled_snapshots(backend: Any) -> set[str]:
    """The snapshots that count against the per-Region quota: any zone not ``disabled``."""
    return {snap for (snap, _), item in _store(backend).items() if item["State"] != "disabled"}


FILTERS = {"snapshot-id": "SnapshotId", "availability-zone": "AvailabilityZone", "state": "State",
           "owner-id": "OwnerId"}


def describe(backend: Any, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    items = list(_store(backend).values())
    for name, values in filters.items():
        key = FILTERS.get(name)
        if key is None:
            from moto.ec2.exceptions import InvalidFilter

            raise InvalidFilter(name)
        items = [i for i in items if i.get(key) in values]
    return [dict(i) for i in sorted(items, key=lambda i: (i["SnapshotId"], i["AvailabilityZone"]))]


def install() -> None:
    """Add the three actions to moto's EC2 response class (moto dispatches by method name)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    def enable_fast_snapshot_restores(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult(enable(self.ec2_backend, self._get_param("SourceSnapshotIds", []),
                                   self._get_param("AvailabilityZones", [])))

    def disable_fast_snapshot_restores(self: Any) -> Any:
        self.error_on_dryrun()
        return ActionResult(disable(self.ec2_backend, self._get_param("SourceSnapshotIds", []),
                                    self._get_param("AvailabilityZones", [])))

    def describe_fast_snapshot_restores(self: Any) -> Any:
        return ActionResult({"FastSnapshotRestores": describe(self.ec2_backend, self._filters_from_querystring())})

    EC2Response.enable_fast_snapshot_restores = enable_fast_snapshot_restores  # type: ignore[attr-defined]
    EC2Response.disable_fast_snapshot_restores = disable_fast_snapshot_restores  # type: ignore[attr-defined]
    EC2Response.describe_fast_snapshot_restores = describe_fast_snapshot_restores  # type: ignore[attr-defined]
