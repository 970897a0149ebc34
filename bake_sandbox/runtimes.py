"""The container runtimes a bake drives on the builder: the node's containerd, and dockerd.

containerd is the node's own (``node_containerd``): stopped until a bake starts it, as on an EKS
AL2023 AMI. dockerd runs in the host's mount namespace on a containerd of its own (this
machine's, on a socket and root of the sandbox's), so docker pools' images never mix with the
node's containerd. Named explicitly: a dockerd told nothing takes /run/containerd's socket when
one answers there, which the node's does while a bake runs, and then loses it. A dockerd
already running is used as is and never stopped by ``down``; only the one ``up`` started (it
has a pid file in the state dir) is stopped.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess

from bake_sandbox import node_containerd
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import Layout
from bake_sandbox.process import Daemon, log_tail

CONTAINERD_SOCKET = node_containerd.SOCKET
DOCKER_SOCKET = "/var/run/docker.sock"


DOCKER_CONTAINERD_SOCKET = "/run/bake-sandbox/docker-containerd/containerd.sock"


def docker_containerd_daemon(layout: Layout) -> Daemon:
    """dockerd's containerd: this machine's binary, its own socket, root and state."""
    config = layout.run_dir / "docker-containerd.toml"
    if not config.exists():
        config.write_text("version = 2\n")  # defaults, not the host's /etc/containerd/config.toml
    argv = ["containerd", "--config", str(config), "--address", DOCKER_CONTAINERD_SOCKET,
            "--root", str(layout.root / "docker-containerd"), "--state", "/run/bake-sandbox/docker-containerd/state"]
    return Daemon("docker-containerd", argv, layout.run_dir, program=str(config))


def dockerd_daemon(layout: Layout) -> Daemon:
    # Its own pid file in the state dir: dockerd refuses to start over a stale /var/run/docker.pid.
    # No iptables and no bridge: this is the developer's machine and its network stays as it is.
    argv = ["dockerd", "--iptables=false", "--bridge=none", "--containerd", DOCKER_CONTAINERD_SOCKET,
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


def containerd_up(layout: Layout) -> bool:
    """Whether the node's containerd serves (some instance, or the sandbox, has it running)."""
    # ctr waits on an absent socket (gRPC keeps retrying): probe the socket first.
    if not _socket_answers(CONTAINERD_SOCKET):
        return False
    try:
        r = subprocess.run([str(node_containerd.bin_dir(layout) / "ctr"), "--address", CONTAINERD_SOCKET, "--timeout",
                            "2s", "version"], capture_output=True, timeout=10)
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
    """Start dockerd and its containerd unless they run; the node's containerd stays as the
    builder boots it."""
    if not _socket_answers(DOCKER_CONTAINERD_SOCKET):
        d = docker_containerd_daemon(layout)
        d.start()
        d.wait_ready(lambda: _socket_answers(DOCKER_CONTAINERD_SOCKET), timeout=60,
                     what=f"answering on {DOCKER_CONTAINERD_SOCKET}")
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
    dockerd_daemon(layout).stop(timeout=20)  # first: it is its containerd's client
    docker_containerd_daemon(layout).stop(timeout=20)
    node_containerd.daemon(layout).stop(timeout=30)


def status(layout: Layout) -> dict[str, str]:
    def one(d: Daemon, up: bool) -> str:
        if not up:
            return "down"
        return "up" if d.running() else "up (not started by the sandbox)"

    try:
        s = node_containerd.state(layout)
        node = f"{s['version']} ({'running' if containerd_up(layout) else 'stopped'}; boots {s['boot']})"
    except (OSError, ValueError):
        node = "down"
    return {"node containerd": node, "dockerd": one(dockerd_daemon(layout), dockerd_up())}


__all__ = ["start", "stop", "status", "containerd_up", "dockerd_up", "log_tail"]
