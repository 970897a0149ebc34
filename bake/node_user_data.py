"""A data-volume pool's node user data (docs/data-volume.md): on AL2023 the cache volume must be
containerd's root before containerd starts.

nodeadm reads its NodeConfig from the user data, as is or as the ``application/node.eks.aws``
parts of a MIME multi-part document, and cloud-init runs the document's ``text/x-shellscript``
parts; ``nodeadm-run.service`` (which starts containerd) runs ``After=cloud-final.service``
(amazon-eks-ami ``templates/al2023/runtime/rootfs/etc/systemd/system/nodeadm-run.service`` and
the nodeadm docs, read 2026-12-07). So the pool's part is a script that installs a systemd mount
unit for the volume (by the label the bake gave its filesystem) ordered before containerd, and
starts it: at first boot before nodeadm-run, at every later boot before containerd.

Pure text: the user's own user data is kept, whole, beside it. Both the stack's launch templates
(constructs/nodepools/props.py) and ``bake karpenter``'s EC2NodeClass (bake/karpenter.py) use it.
"""

from __future__ import annotations

from email import message_from_string

from bake.data_volume import LABEL
from bake.errors import UsageError

BOUNDARY = "==BAKE-DATA-VOLUME=="  # fixed: the same lock gives the same launch template

MOUNT_SCRIPT = """#!/bin/bash
# eks-image-bake: the cache snapshot's volume is {root} (docs/data-volume.md).
set -euo pipefail
unit=$(systemd-escape --path --suffix=mount {root})
cat > "/etc/systemd/system/$unit" <<'UNIT'
[Unit]
Description=eks-image-bake image cache at {root}
Before={service}.service
[Mount]
What=/dev/disk/by-label/{label}
Where={root}
Type=ext4
Options=defaults,noatime
[Install]
RequiredBy={service}.service
UNIT
systemctl daemon-reload
systemctl enable --now "$unit"
"""

# What a plain (not MIME) user data is, by its first line, for its part's Content-Type.
PLAIN_TYPES = (("#!", "text/x-shellscript"), ("#cloud-config", "text/cloud-config"))


def mount_script(root: str = "/var/lib/containerd", service: str = "containerd") -> str:
    return MOUNT_SCRIPT.format(root=root, service=service, label=LABEL)


def _part(content_type: str, body: str, boundary: str = BOUNDARY) -> str:
    return f'--{boundary}\nContent-Type: {content_type}; charset="us-ascii"\n\n{body.rstrip()}\n\n'


def _plain_type(text: str, pool: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    for prefix, kind in PLAIN_TYPES:
        if first.startswith(prefix):
            return kind
    if "node.eks.aws/" in text and "NodeConfig" in text:
        return "application/node.eks.aws"
    raise UsageError(f"pool {pool!r}: cache = \"data-volume\" adds a part to the node's user data, and its user data is "
                     "neither a NodeConfig, a script, a cloud-config nor a MIME multi-part document: give it as one")


def with_cache_mount(user_data: str | None, pool: str) -> str:
    """The user's user data with the mount part added: a MIME document gains one more part (before
    its closing boundary); anything else becomes the first part of a new one."""
    if user_data and user_data.lstrip().upper().startswith(("MIME-VERSION", "CONTENT-TYPE")):
        boundary = message_from_string(user_data.lstrip()).get_boundary()
        closing = f"--{boundary}--"
        if not boundary or closing not in user_data:
            raise UsageError(f"pool {pool!r}: its MIME user data has no closing boundary to add the cache mount before")
        head, _, tail = user_data.rpartition(closing)
        return f"{head.rstrip()}\n\n{_part('text/x-shellscript', mount_script(), boundary)}{closing}{tail}"
    own = _part(_plain_type(user_data, pool), user_data) if user_data else ""
    return (f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{BOUNDARY}"\n\n'
            f"{own}{_part('text/x-shellscript', mount_script())}--{BOUNDARY}--\n")
