"""The boot-time prewarm baked into the AMI: a systemd unit, its script and the list of paths.

The files ship in this package (``prewarm.sh``, ``eks-image-bake-prewarm.service``) and are
written to the builder under /etc, which the pre-snapshot scrub leaves alone. The unit is
enabled the way ``systemctl enable`` would (a link in multi-user.target.wants), without asking
a running systemd: the builder's systemd is not the node's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from importlib import resources

DIR = "/etc/eks-image-bake"
SCRIPT = f"{DIR}/prewarm.sh"
LIST = f"{DIR}/prewarm.list"
UNIT_NAME = "eks-image-bake-prewarm.service"
UNIT = f"/etc/systemd/system/{UNIT_NAME}"
WANTS = f"/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"


def packaged(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RemoteFile:
    path: str
    mode: str
    content: str

    def command(self) -> str:
        """A script that writes stdin to ``path`` (atomically: a temporary file, then a rename).
        The temporary name carries the shell's pid: two bakes sharing one host (the sandbox's
        builders all do) must not rename each other's file away."""
        path = shlex.quote(self.path)
        tmp = shlex.quote(self.path + ".tmp") + ".$$"
        directory = shlex.quote(self.path.rpartition("/")[0])
        return f"set -e; mkdir -p {directory}; cat > {tmp}; chmod {self.mode} {tmp}; mv -f {tmp} {path}"


def files(listing: str) -> list[RemoteFile]:
    """What the bake writes: the script, the list of the images' paths, the unit."""
    return [
        RemoteFile(SCRIPT, "0755", packaged("prewarm.sh")),
        RemoteFile(LIST, "0644", listing),
        RemoteFile(UNIT, "0644", packaged(UNIT_NAME)),
    ]


def enable_command() -> str:
    wants = shlex.quote(WANTS)
    return f"set -e; mkdir -p {shlex.quote(WANTS.rpartition('/')[0])}; ln -sfn {shlex.quote(UNIT)} {wants}"
