"""Stand-ins for a Bottlerocket builder (docs/data-volume.md "Bottlerocket"; bake/bottlerocket.py).

- **The admin container**: a second sshd (``admin_port``: the builder's port + 1) in a mount
  namespace of its own, made from the sandbox builder's ("the host") with what a Bottlerocket
  admin container does not have hidden: containerd's socket (/run/containerd under a tmpfs), the
  node's binaries (``ctr``, ``containerd``, the ``systemctl`` stand-in: their folder under a
  tmpfs, /usr/bin/ctr and /usr/bin/containerd bound over by a stub that exits 127), and with
  what it has: ``/opt/bin/bash`` and ``sheltie`` on sudo's PATH. A session there cannot reach
  containerd; ``sudo sheltie`` can.
- **sheltie** (``SHELTIE``): as bottlerocket-admin-container's (with arguments ``nsenter -t 1 -a --
  "$@"``, without them the admin container's bash through ``/proc/$PPID/root``), except that it
  enters only the mount namespace of the sandbox builder's sshd, not every namespace of PID 1.
- **Bottlerocket's boot** (``prepare_data_volume``, called by bake_sandbox.moto_volumes): an
  instance whose user data enables the admin container has its /dev/xvdb formatted and mounted at
  containerd's root in the host's view when it launches, as Bottlerocket prepares its data
  volume, and the node's containerd started on it (Bottlerocket runs it from boot); stopping or
  terminating it stops containerd and unmounts the volume (``shut_down``), as its shutdown would.

Only the standard library at import: the moto server imports this module.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any

BUILDER_PID_ENV = "BAKE_SANDBOX_BUILDER_PID_FILE"  # the moto server's way to the host's namespace
SYSTEMCTL_ENV = "BAKE_SANDBOX_SYSTEMCTL"  # the node's systemctl stand-in (bake_sandbox.node_containerd)
ADMIN_MARK = b"[settings.host-containers.admin]"
DATA_ROOT = "/var/lib/containerd"
STANDIN_LABEL = "br-data-standin"  # ext4 here; which filesystem Bottlerocket makes is its own business

SHELTIE = """#!/bin/bash
# bake sandbox: a stand-in for bottlerocket-admin-container's sheltie. The real one enters every
# namespace of PID 1 (nsenter -t 1 -a); the sandbox's "host" is the builder sshd's mount namespace.
if [[ $EUID -ne 0 ]]; then
    echo "sheltie must be run as root, you can use 'sudo sheltie' in the admin container" >&2
    exit 1
fi
# The host's PATH holds only what a Bottlerocket host has (HOST_TOOLS): no sh, awk, sed or python3.
HOST_NS={host_ns}
if [[ ${{#@}} -ne 0 ]]; then
  exec nsenter --mount="$HOST_NS" -- /usr/bin/env PATH={host_path} "$@"
else
  exec nsenter --mount="$HOST_NS" "/proc/${{PPID}}/root/opt/bin/bash"
fi
"""

# What a Bottlerocket host has on its PATH, from bottlerocket-core-kit a10182f9 (read 2026-12-07):
# the packages `release.spec` requires for every variant (coreutils, findutils, grep, procps,
# util-linux, e2fsprogs, iproute, systemd, containerd) and each package's `%files`. Not there:
# sh or bash (no shell: SECURITY_FEATURES.md), awk, sed, python3, socat. The sandbox links those
# of them this machine has; ctr, containerd and systemctl are the sandbox node's.
COREUTILS = (
    "[ base64 basename cat chgrp chmod chown cp cut date dd df dirname du echo env expr false head id "
    "install ln ls md5sum mkdir mkfifo mknod mktemp mv nproc numfmt od printf readlink realpath rm rmdir "
    "seq sha256sum sleep sort split stat sync tail tee test timeout touch tr true truncate uname uniq wc yes"
).split()
HOST_TOOLS = (
    *COREUTILS, "find", "xargs", "grep",
    "findmnt", "mount", "umount", "lsblk", "blkid", "blockdev", "flock", "losetup", "mountpoint", "nsenter",
    "wipefs", "fstrim", "ps", "pgrep", "pkill", "free", "sysctl", "mkfs.ext4", "e2fsck", "resize2fs", "ip",
)
NODE_TOOLS = ("ctr", "containerd", "containerd-shim-runc-v2", "systemctl")

STUB = """#!/bin/sh
# bake sandbox: the admin container has no {name} (the host's is reached with sudo sheltie)
echo "$(basename "$0"): command not found in the admin container (bake sandbox stand-in)" >&2
exit 127
"""

_mounted: dict[str, str] = {}  # instance id -> loop device mounted for it in the host's view
_lock = threading.Lock()


# --- the boot and shutdown stand-ins (in the moto server) --------------------------------------

def is_bottlerocket(user_data: Any) -> bool:
    """Whether an instance's user data (moto keeps it base64-encoded) enables the admin container."""
    if not user_data:
        return False
    raw = user_data[0] if isinstance(user_data, list) else user_data
    if hasattr(raw, "as_bytes"):  # moto's Base64EncodedString
        raw = raw.as_bytes()
    raw = raw.encode() if isinstance(raw, str) else bytes(raw)
    try:
        raw = base64.b64decode(raw, validate=True)
    except ValueError:
        pass
    return ADMIN_MARK in raw


def _host_ns() -> str:
    pid_file = os.environ.get(BUILDER_PID_ENV)
    if not pid_file:
        raise RuntimeError(f"bake sandbox: {BUILDER_PID_ENV} is not set: no host namespace for a Bottlerocket builder")
    return f"/proc/{Path(pid_file).read_text().strip()}/ns/mnt"


def _in_host(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--mount={_host_ns()}", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)


def _systemctl(instance_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The node's systemctl stand-in in the host's view, as ``instance_id`` (its holder's name)."""
    systemctl = os.environ.get(SYSTEMCTL_ENV)
    if not systemctl:
        raise RuntimeError(f"bake sandbox: {SYSTEMCTL_ENV} is not set: no containerd for a Bottlerocket builder")
    return subprocess.run(["nsenter", f"--mount={_host_ns()}", "--", systemctl, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BAKE_SANDBOX_INSTANCE": instance_id})


def prepare_data_volume(instance_id: str, loop: str) -> None:
    """Bottlerocket's boot, for the data volume and its containerd: the volume formatted and
    mounted at containerd's root in the host's view, then containerd started on it, as
    Bottlerocket runs it from boot (the bake finds it running and leaves it so). Refused while
    the node's containerd already runs: its root would change under it."""
    with _lock:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", STANDIN_LABEL, loop], check=True, capture_output=True, timeout=120)
        busy = _in_host(f"findmnt -rno SOURCE --mountpoint {DATA_ROOT} | grep -q '^/dev/loop' && echo busy; true")
        if busy.stdout.strip():
            raise RuntimeError(f"bake sandbox: a data volume is already mounted at {DATA_ROOT}: one Bottlerocket builder at a time")
        if _systemctl(instance_id, "is-active", "containerd").stdout.strip() == "active":
            raise RuntimeError(f"bake sandbox: the node's containerd is running: {DATA_ROOT} cannot change under it")
        done = _in_host(f"mount {shlex.quote(loop)} {DATA_ROOT}")
        if done.returncode != 0:
            raise RuntimeError(f"bake sandbox: mounting {loop} at {DATA_ROOT} for {instance_id}: {done.stderr.strip()}")
        _mounted[instance_id] = loop
        started = _systemctl(instance_id, "start", "containerd")
        if started.returncode != 0:
            raise RuntimeError(f"bake sandbox: containerd did not start for {instance_id}: {started.stderr.strip()}")


def shut_down(instance_id: str) -> None:
    """The instance's shutdown: its containerd stopped, then its data volume synced and unmounted
    (lazily, if a process of a killed bake still holds it)."""
    with _lock:
        loop = _mounted.pop(instance_id, None)
        if loop is None:
            return
        _systemctl(instance_id, "stop", "containerd")
        _in_host(f"sync; findmnt -rno SOURCE --mountpoint {DATA_ROOT} | grep -qxF {shlex.quote(loop)} && "
                 f"{{ umount {DATA_ROOT} || umount -l {DATA_ROOT}; }}; true")


# --- the admin container (sandbox up/down) ------------------------------------------------------

def admin_port(layout: Any) -> int:
    return layout.ssh_port + 1


def admin_ssh_host(layout: Any) -> str:
    from bake_sandbox.layout import HOST

    return f"{HOST}:{admin_port(layout)}"


def _dir(layout: Any) -> Path:
    return layout.ssh_dir / "bottlerocket-admin"


def daemon(layout: Any) -> Any:
    from bake_sandbox import builder, node_containerd
    from bake_sandbox.process import Daemon

    d = _dir(layout)
    config = d / "sshd_config"
    hide = [
        "mkdir -p /run/containerd && mount -t tmpfs -o mode=0755 tmpfs /run/containerd",
        f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(node_containerd.bin_dir(layout)))}",
        *(f"if [ -e {p} ]; then mount --bind {shlex.quote(str(d / 'stub'))} {p}; fi"
          for p in ("/usr/bin/ctr", "/usr/bin/containerd", "/usr/local/bin/ctr")),
        "mount -t tmpfs -o mode=0755 tmpfs /usr/local/sbin",
        f"install -m 0755 {shlex.quote(str(d / 'sheltie'))} /usr/local/sbin/sheltie",
        "mount -t tmpfs -o mode=0755 tmpfs /opt && mkdir /opt/bin && cp /bin/bash /opt/bin/bash",
    ]
    script = " && ".join(hide) + (f" && exec {builder.SSHD} -D -f {shlex.quote(str(config))}"
                                  f" -E {shlex.quote(str(layout.run_dir / 'sshd-admin.log'))}")
    host = builder.daemon(layout).pid()
    argv = ["nsenter", f"--mount=/proc/{host}/ns/mnt", "--", "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script]
    return Daemon("sshd-admin", argv, layout.run_dir, program=str(config))


def start(layout: Any) -> None:
    """The admin container's sshd, after the builder's (its namespace is made from the host's)."""
    from bake_sandbox import builder
    from bake_sandbox.errors import SandboxError
    from bake_sandbox.layout import HOST, SSH_USER
    from bake_sandbox.process import port_open, run

    host = builder.daemon(layout).pid()
    if host is None:
        raise SandboxError("the Bottlerocket admin container stand-in needs the builder's sshd running")
    d = daemon(layout)
    folder = _dir(layout)
    made_from = folder / "host.pid"  # the builder sshd whose namespace this one was made from
    if d.running():
        if made_from.exists() and made_from.read_text().strip() == str(host):
            return
        builder.stop_daemon(d)  # made from a builder that has been restarted since: its view is stale
    if port_open(HOST, admin_port(layout)):
        raise SandboxError(f"sshd (admin container): {HOST}:{admin_port(layout)} is taken by another process")
    folder.mkdir(parents=True, exist_ok=True)
    made_from.write_text(str(host))
    host_bin = _host_bin(layout)
    (folder / "sheltie").write_text(SHELTIE.format(host_ns=f"/proc/{host}/ns/mnt", host_path=shlex.quote(str(host_bin))))
    (folder / "stub").write_text(STUB.format(name="ctr or containerd"))
    for f in ("sheltie", "stub"):
        (folder / f).chmod(0o755)
    p = builder._paths(layout)
    (folder / "sshd_config").write_text(builder.SSHD_CONFIG.format(
        port=admin_port(layout), host=HOST, host_key=p["host_key"], pid_file=layout.run_dir / "sshd-admin.own.pid",
        keys_script=p["keys_script"], user=SSH_USER))
    run([builder.SSHD, "-t", "-f", str(folder / "sshd_config")], "check the admin container's sshd config")
    d.start()
    d.wait_ready(lambda: builder._banner(admin_port(layout)), timeout=30, what=f"answering SSH on {admin_ssh_host(layout)}")


def _host_bin(layout: Any) -> Path:
    """The host's PATH for sheltie: a folder of links to HOST_TOOLS and the node's NODE_TOOLS."""
    import shutil

    from bake_sandbox import node_containerd

    d = _dir(layout) / "host-bin"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for tool in HOST_TOOLS:
        if found := shutil.which(tool, path=path):
            (d / tool).symlink_to(found)
    for tool in NODE_TOOLS:
        (d / tool).symlink_to(node_containerd.bin_dir(layout) / tool)
    return d


def stop(layout: Any) -> None:
    from bake_sandbox import builder

    builder.stop_daemon(daemon(layout))


def status(layout: Any) -> str:
    from bake_sandbox import builder

    return "up" if daemon(layout).running() and builder._banner(admin_port(layout)) else "down"
