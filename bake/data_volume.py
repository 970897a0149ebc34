"""A ``cache = "data-volume"`` pool (docs/data-volume.md): the images live on a second EBS volume
that holds the runtime's root directory; the volume alone is snapshotted, and the nodes keep
their stock AMI and map the snapshot at ``DEVICE``.

Pure: the mapping the builder launches with, and the scripts the builder runs. The steps
(bake/steps/data_volume.py) run them.
"""

from __future__ import annotations

import shlex
from typing import Any

# The node's second device: where Bottlerocket keeps its data volume, and a free name on AL2023.
DEVICE = "/dev/xvdb"
# On a Nitro instance the volume shows as /dev/nvmeNn1; udev (amazon-ec2-utils on AL2023) links
# it here by its id, which is how the builder finds the volume it launched with.
BY_ID = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume}"
LABEL = "bake-cache"
CACHE_SNAPSHOT_ROLE = "cache-snapshot"  # its bake:role tag (sweep keeps a completed one, prune retires it)
MIN_GIB = 1  # a pool whose images' sizes are unknown to the plan (its disk plan says why)
DEVICE_TIMEOUT = 60  # seconds for udev to show the device after the instance runs


def launch_mapping(gib: int, volume_type: str, kms_key_id: str | None) -> dict[str, Any]:
    """The data volume in RunInstances' BlockDeviceMappings. Mapped at launch rather than
    created and attached: it goes with the builder when the builder is terminated (a killed
    bake leaves no volume), and the launch's volume tag specification tags it."""
    ebs: dict[str, Any] = {"VolumeSize": gib, "VolumeType": volume_type, "DeleteOnTermination": True}
    if kms_key_id:
        ebs.update(Encrypted=True, KmsKeyId=kms_key_id)
    return {"DeviceName": DEVICE, "Ebs": ebs}


def by_id(volume_id: str) -> str:
    return BY_ID.format(volume=volume_id.replace("-", ""))


def mount_script(volume_id: str, data_root: str, service: str) -> str:
    """Wait for the volume's device, refuse a running runtime (its root would change under it),
    make an ext4 filesystem (AL2023 and Bottlerocket both mount it) and mount it at the
    runtime's root."""
    dev, root, unit = shlex.quote(by_id(volume_id)), shlex.quote(data_root), shlex.quote(service)
    return f"""set -e
dev={dev}
i=0; until [ -b "$dev" ] || [ -b {DEVICE} ]; do
  i=$((i+1)); [ $i -lt {DEVICE_TIMEOUT * 2} ] || {{ echo "no device for {volume_id} ($dev or {DEVICE})" >&2; exit 1; }}
  sleep 0.5
done
[ -b "$dev" ] || dev={DEVICE}
if systemctl is-active {unit} >/dev/null 2>&1; then
  echo "{service} is running: the data volume is mounted at {data_root} before it starts" >&2; exit 1
fi
mkfs.ext4 -q -F -L {LABEL} "$dev"
mkdir -p {root}
mount "$dev" {root}
"""


def undo_script(volume_id: str, data_root: str) -> str:
    """Unmount the volume if it is what is mounted at the runtime's root (a failed bake's undo;
    something else there, as the sandbox's own disk under it, is left alone)."""
    root = shlex.quote(data_root)
    return (f"for d in {shlex.quote(by_id(volume_id))} {DEVICE}; do r=$(readlink -f \"$d\" 2>/dev/null) || continue; "
            f"if findmnt -rno SOURCE --mountpoint {root} | grep -qxF \"$r\"; then umount {root}; fi; done; true")


def unmount_script(data_root: str) -> str:
    """Everything written reaches the volume before its snapshot."""
    return f"sync && umount {shlex.quote(data_root)}"
