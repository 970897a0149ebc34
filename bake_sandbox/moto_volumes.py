"""EBS data volumes with real bytes, for the sandbox's moto server (issue 24, data-volume mode).

moto keeps a volume as a record only: nothing can be formatted, mounted or snapshotted. Inside
the moto server process this module gives every volume attached to an instance at a device
other than its root device a real block device, the way EC2 does:

- an attached volume is a sparse file ``VOLUMES/vol-….img`` of the volume's size, behind a loop
  device (``losetup``); a volume created from a snapshot starts as a copy of the snapshot's file
  (``cp --sparse=always``), so a node launched from a snapshot gets its own copy and never
  writes to the snapshot;
- the device shows where udev puts an attached EBS volume on a Nitro instance,
  ``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`` (the volume id without its dash;
  amazon-ec2-utils' rules, read 2026-12-07), a link to the loop device: the builder (this
  machine, reached over SSH) finds it there as it would on EC2;
- ``CreateSnapshot`` of such a volume keeps its bytes as ``VOLUMES/snapshots/snap-….img``, and
  ``CopySnapshot`` (another region's copy) gives the copy the same bytes;
  ``DeleteSnapshot`` removes them; detaching releases the loop device; deleting the volume
  (``DeleteOnTermination`` at terminate too) removes its file.

Root volumes stay records: the builder's root is this machine. Only with
``BAKE_SANDBOX_VOLUMES`` set (``bake_sandbox.moto`` sets it for the sandbox's moto); a moto
restart forgets its volumes, so ``install`` releases the loop devices and files a previous one left.

An instance whose user data enables Bottlerocket's admin container gets its /dev/xvdb prepared at
launch and unmounted at stop or terminate, as Bottlerocket would (``bake_sandbox.bottlerocket``).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from bake_sandbox import bottlerocket

ENV = "BAKE_SANDBOX_VOLUMES"
BOTTLEROCKET_DATA = "/dev/xvdb"  # where Bottlerocket's data volume is (bake_sandbox.bottlerocket)
BY_ID = Path("/dev/disk/by-id")
_lock = threading.Lock()


def device_link(volume_id: str) -> Path:
    """Where a Nitro instance's udev names an attached EBS volume."""
    return BY_ID / f"nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


class Store:
    """The files and loop devices behind the volumes of one moto server."""

    def __init__(self, root: Path):
        self.root = root
        self.snapshots = root / "snapshots"
        self.snapshots.mkdir(parents=True, exist_ok=True)

    def volume_file(self, volume_id: str) -> Path:
        return self.root / f"{volume_id}.img"

    def snapshot_file(self, snapshot_id: str) -> Path:
        return self.snapshots / f"{snapshot_id}.img"

    def attach(self, volume_id: str, size_gib: int, snapshot_id: str | None) -> str:
        """The volume's loop device, its file made first (empty, or the snapshot's copy)."""
        f = self.volume_file(volume_id)
        if not f.exists():
            source = self.snapshot_file(snapshot_id) if snapshot_id else None
            if source is not None and source.exists():
                subprocess.run(["cp", "--sparse=always", str(source), str(f)], check=True)
            else:
                with open(f, "wb") as out:
                    out.truncate(size_gib * 2**30)
        loop = subprocess.run(["losetup", "--find", "--show", str(f)], check=True, capture_output=True,
                              text=True).stdout.strip()
        link = device_link(volume_id)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(loop)
        return loop

    def detach(self, volume_id: str) -> None:
        link = device_link(volume_id)
        if link.is_symlink():
            loop = os.readlink(link)
            link.unlink()
            # A device still mounted somewhere (a builder killed mid-bake) is released once unmounted.
            subprocess.run(["losetup", "--detach", loop], capture_output=True)

    def delete(self, volume_id: str) -> None:
        self.detach(volume_id)
        self.volume_file(volume_id).unlink(missing_ok=True)

    def snapshot(self, volume_id: str, snapshot_id: str) -> None:
        self._keep(self.volume_file(volume_id), snapshot_id)

    def copy(self, source_snapshot_id: str, snapshot_id: str) -> None:
        """A copy in another region holds the source's bytes (snapshot ids are unique across regions)."""
        self._keep(self.snapshot_file(source_snapshot_id), snapshot_id)

    def _keep(self, f: Path, snapshot_id: str) -> None:
        if f.exists():
            subprocess.run(["cp", "--sparse=always", str(f), str(self.snapshot_file(snapshot_id))], check=True)

    def release_stale(self) -> None:
        """The loop devices and files a previous moto server left (it forgot their volumes and
        snapshots when it stopped)."""
        listed = subprocess.run(["losetup", "--list", "--json"], capture_output=True, text=True)
        for dev in json.loads(listed.stdout or '{"loopdevices": []}').get("loopdevices", []):
            if str(dev.get("back-file") or "").startswith(str(self.root) + "/"):
                subprocess.run(["losetup", "--detach", dev["name"]], capture_output=True)
        for link in BY_ID.glob("nvme-Amazon_Elastic_Block_Store_vol*") if BY_ID.is_dir() else []:
            # a link to a loop device that no longer has a file behind it
            loop = Path(os.readlink(link)).name
            if link.is_symlink() and not Path(f"/sys/block/{loop}/loop/backing_file").exists():
                link.unlink()
        for f in [*self.root.glob("vol-*.img"), *self.snapshots.glob("snap-*.img")]:
            f.unlink()


def install() -> None:
    root = os.environ.get(ENV)
    if not root:
        return
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.models.instances import Instance

    if getattr(EBSBackend.attach_volume, "bake_volumes", False):
        return
    store = Store(Path(root))
    store.release_stale()
    attach, detach = EBSBackend.attach_volume, EBSBackend.detach_volume
    delete, snapshot, delete_snapshot = EBSBackend.delete_volume, EBSBackend.create_snapshot, EBSBackend.delete_snapshot
    copy = EBSBackend.copy_snapshot

    def attach_volume(self: Any, volume_id: str, instance_id: str, device_path: str, *a: Any, **kw: Any) -> Any:
        result = attach(self, volume_id, instance_id, device_path, *a, **kw)
        instance = self.get_instance(instance_id)
        if device_path != instance.root_device_name:
            volume = self.get_volume(volume_id)
            with _lock:
                loop = store.attach(volume_id, volume.size, volume.snapshot_id)
            if device_path == BOTTLEROCKET_DATA and bottlerocket.is_bottlerocket(instance.user_data):
                bottlerocket.prepare_data_volume(instance_id, loop)  # Bottlerocket's boot prepares it
        return result

    def detach_volume(self: Any, volume_id: str, *a: Any, **kw: Any) -> Any:
        result = detach(self, volume_id, *a, **kw)
        with _lock:
            store.detach(volume_id)
        return result

    def delete_volume(self: Any, volume_id: str) -> Any:
        result = delete(self, volume_id)
        with _lock:
            store.delete(volume_id)
        return result

    def create_snapshot(self: Any, volume_id: str, *a: Any, **kw: Any) -> Any:
        result = snapshot(self, volume_id, *a, **kw)
        with _lock:
            store.snapshot(volume_id, result.id)
        return result

    def copy_snapshot(self: Any, source_snapshot_id: str, *a: Any, **kw: Any) -> Any:
        result = copy(self, source_snapshot_id, *a, **kw)
        with _lock:
            store.copy(source_snapshot_id, result.id)
        return result

    def delete_snapshot_(self: Any, snapshot_id: str) -> Any:
        result = delete_snapshot(self, snapshot_id)
        store.snapshot_file(snapshot_id).unlink(missing_ok=True)
        return result

    # A Bottlerocket builder's shutdown unmounts its data volume, before a terminate detaches it.
    stop, terminate = Instance.stop, Instance.terminate

    def stop_(self: Any) -> Any:
        bottlerocket.shut_down(self.id)
        return stop(self)

    def terminate_(self: Any) -> Any:
        bottlerocket.shut_down(self.id)
        return terminate(self)

    Instance.stop, Instance.terminate = stop_, terminate_  # type: ignore[method-assign]
    attach_volume.bake_volumes = True  # type: ignore[attr-defined]
    EBSBackend.attach_volume = attach_volume  # type: ignore[method-assign]
    EBSBackend.detach_volume = detach_volume  # type: ignore[method-assign]
    EBSBackend.delete_volume = delete_volume  # type: ignore[method-assign]
    EBSBackend.create_snapshot = create_snapshot  # type: ignore[method-assign]
    EBSBackend.delete_snapshot = delete_snapshot_  # type: ignore[method-assign]
    EBSBackend.copy_snapshot = copy_snapshot  # type: ignore[method-assign]
