"""The boot-time prewarm baked into the AMI: a systemd unit, its script and the list of paths.

The files ship in this package (``prewarm.sh``, ``eks-image-bake-prewarm.service``) and are
written to the builder under /etc, which the pre-snapshot scrub leaves alone. The unit is
enabled the way ``systemctl enable`` would (a link in multi-user.target.wants), without asking
a running systemd: the builder's systemd is not the node's.
"""

from __future__ import annotations

import base64
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
        """Shell that writes the content to ``path`` atomically (a temporary file, then a
        rename). The content travels base64-encoded inside the command, so any bytes arrive
        intact and none is read as shell. The temporary name carries the shell's pid: two
        bakes sharing one host (the sandbox's builders all do) must not rename each other's
        file away."""
        path = shlex.quote(self.path)
        tmp = shlex.quote(self.path + ".tmp") + ".$$"
        directory = shlex.quote(self.path.rpartition("/")[0])
        data = base64.b64encode(self.content.encode()).decode()
        return f"mkdir -p {directory}; printf %s {data} | base64 -d > {tmp}; chmod {self.mode} {tmp}; mv -f {tmp} {path}"


def files(listing: str) -> list[RemoteFile]:
    """What the bake writes: the script, the list of the images' paths, the unit."""
    return [
        RemoteFile(SCRIPT, "0755", packaged("prewarm.sh")),
        RemoteFile(LIST, "0644", listing),
        RemoteFile(UNIT, "0644", packaged(UNIT_NAME)),
    ]


def enable_command(unit: str = UNIT, wants: str = WANTS) -> str:
    link = shlex.quote(wants)
    return f"mkdir -p {shlex.quote(wants.rpartition('/')[0])}; ln -sfn {shlex.quote(unit)} {link}"


def install_script(written: list[RemoteFile], unit: str = UNIT, wants: str = WANTS) -> str:
    """Every file and the unit's link in one script, for ``sh -s`` (the script on stdin, so a
    long list of paths meets no argument limit): one SSH round trip instead of four (each
    costs a channel, sudo and a shell; about 50-80 ms on the sandbox)."""
    return "\n".join(["set -e", *(f.command() for f in written), enable_command(unit, wants)]) + "\n"
