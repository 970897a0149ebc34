"""The container runtimes a bake drives on the builder: containerd and dockerd.

They run in the host's mount namespace (the builder's overlay covers /etc, /var, /home, /root
only for commands run over SSH), so images pulled over SSH land in the host's runtimes, as the
testbed notes describe. A runtime already running is used as is and never stopped by ``down``;
only the ones ``up`` started (they have a pid file in the state dir) are stopped.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess

from bake.sandbox.errors import SandboxError
from bake.sandbox.layout import Layout
from bake.sandbox.process import Daemon, log_tail

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
DOCKER_SOCKET = "/var/run/docker.sock"


def containerd_daemon(layout: Layout) -> Daemon:
    return Daemon("containerd", ["containerd", "--address", CONTAINERD_SOCKET], layout.run_dir, program="containerd")


def dockerd_daemon(layout: Layout) -> Daemon:
    # Its own pid file in the state dir: dockerd refuses to start over a stale /var/run/docker.pid.
    # No iptables and no bridge: this is the developer's machine and its network stays as it is.
    argv = ["dockerd", "--iptables=false", "--bridge=none", "--containerd", CONTAINERD_SOCKET,
            "--pidfile", str(layout.run_dir / "dockerd.own.pid")]
    return Daemon("dockerd", argv, layout.run_dir, program="dockerd")


def _socket_answers(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(path)
        return True
    except OSError:
        return False


def containerd_up() -> bool:
    # ctr waits on an absent socket (gRPC keeps retrying): probe the socket first.
    if shutil.which("ctr") is None or not _socket_answers(CONTAINERD_SOCKET):
        return False
    try:
        r = subprocess.run(["ctr", "--address", CONTAINERD_SOCKET, "--timeout", "2s", "version"],
                           capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=2)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(self._path)


def dockerd_up() -> bool:
    conn = _UnixHTTPConnection(DOCKER_SOCKET)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start(layout: Layout) -> None:
    """Start containerd, then dockerd on top of it, unless they already run."""
    if not containerd_up():
        d = containerd_daemon(layout)
        d.start()
        d.wait_ready(containerd_up, timeout=60, what=f"answering on {CONTAINERD_SOCKET}")
    if not dockerd_up():
        d = dockerd_daemon(layout)
        d.start()
        d.wait_ready(dockerd_up, timeout=90, what=f"answering on {DOCKER_SOCKET}")
    check_sudo_docker()


def check_sudo_docker() -> None:
    """A bake runs ``sudo docker pull``: the client sudo's secure_path finds must talk to dockerd.

    There may be two clients (a newer one in /usr/local/bin, Debian's in /usr/bin); a client
    that cannot negotiate the daemon's API version would fail every docker pool's bake.
    """
    if shutil.which("sudo") is None:
        raise SandboxError("sudo is not installed (scripts/dev.sh setup installs it)")
    r = subprocess.run(["sudo", "-n", "docker", "version", "--format", "{{.Client.Version}} {{.Server.Version}}"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SandboxError(f"`sudo docker version` fails against dockerd: {(r.stderr or r.stdout).strip()}")


def stop(layout: Layout) -> None:
    # dockerd first: it is containerd's client.
    dockerd_daemon(layout).stop(timeout=20)
    containerd_daemon(layout).stop(timeout=20)


def status(layout: Layout) -> dict[str, str]:
    def one(d: Daemon, up: bool) -> str:
        if not up:
            return "down"
        return "up" if d.running() else "up (not started by the sandbox)"

    return {"containerd": one(containerd_daemon(layout), containerd_up()),
            "dockerd": one(dockerd_daemon(layout), dockerd_up())}


__all__ = ["start", "stop", "status", "containerd_up", "dockerd_up", "log_tail"]
