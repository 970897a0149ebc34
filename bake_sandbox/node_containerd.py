"""The builder's containerd, as an EKS AL2023 AMI has it: installed, stopped, started by systemd.

On a freshly booted EKS AL2023 AMI containerd does not run: nodeadm's ``nodeadm-run.service``
writes /etc/containerd/config.toml and restarts it at first boot (amazon-eks-ami
``nodeadm/internal/containerd/daemon.go`` ``EnsureRunning``), and the AMI's own build starts it
only to cache the pause image and stops it again
(``templates/al2023/provisioners/cache-pause-container.sh``). The AMI ships no config of its own
(``templates/al2023/runtime/rootfs/etc`` has no ``containerd/``): before nodeadm, containerd runs
with its built-in defaults. Read 2026-12-06 at amazon-eks-ami 81fec2e.

The sandbox models that:
- the binaries are Debian's containerd 2.1 (default) or 1.7, unpacked into ``.tools/`` by
  ``scripts/dev.sh setup``; ``NODE/bin`` links the chosen version's ``containerd``, ``ctr`` and
  shim, and holds a ``systemctl`` stand-in. sudo's ``secure_path`` for the builder user starts
  with ``NODE/bin``, so a bake's ``sudo systemctl`` and ``sudo ctr`` find them, as on a node.
- ``/var/lib/containerd`` on the builder is ``NODE/root`` (bind-mounted in sshd's namespace):
  the disk the AMI would hold, kept apart from this machine's own containerd state.
- every sandbox "instance" shares one builder, so the stand-in keeps per-instance state: an
  instance sees containerd active only when it started it (or the builder boots with it
  running); the daemon stops when the last instance that started it stops it. The instance is
  ``BAKE_SANDBOX_INSTANCE``, which sshd sets from the key that logged in (see ``builder``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import Layout
from bake_sandbox.process import Daemon

VERSIONS = {"2.1": "containerd-2.1", "1.7": "containerd-1.7"}
DEFAULT_VERSION = "2.1"
BOOT_STATES = ("stopped", "running")
SOCKET = "/run/containerd/containerd.sock"
BINARIES = ("containerd", "ctr", "containerd-shim-runc-v2")
TOOLS = Path(__file__).resolve().parents[1] / ".tools"

STANDIN = r'''#!{python} -I
# Written by `python -m bake sandbox up`: the sandbox builder's `systemctl`, for the units a bake
# touches (containerd, docker). There is no systemd here; see bake_sandbox/node_containerd.py.
import fcntl, json, os, signal, socket, subprocess, sys, time
NODE = {node!r}
RUN_DIR = {run_dir!r}
SANDBOX_DIR = {sandbox_dir!r}
PYTHON = {python!r}
SOCKET = {socket!r}
DOCKER_SOCKET = "/var/run/docker.sock"
INSTANCE = os.environ.get("BAKE_SANDBOX_INSTANCE") or "host"


def state():
    with open(os.path.join(NODE, "state.json")) as f:
        return json.load(f)


def save(s):
    tmp = os.path.join(NODE, ".state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(s, f)
    os.replace(tmp, os.path.join(NODE, "state.json"))


def answers(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(path)
        return True
    except OSError:
        return False


def pid():
    try:
        p = int(open(os.path.join(NODE, "containerd.pid")).read())
        with open("/proc/%d/stat" % p) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return None
        with open("/proc/%d/cmdline" % p, "rb") as f:
            return p if b"containerd" in f.read() else None
    except (OSError, ValueError):
        return None


def holders():
    return set(os.listdir(os.path.join(NODE, "holders")))


def hold(path, delta):
    """An instance's starts less its stops: the sandbox's own uses nest (a test's look around a
    clean-up that also starts it); an EC2-like bake starts once, when it found it inactive."""
    try:
        count = int(open(path).read() or 0)
    except (OSError, ValueError):
        count = 0
    count += delta
    if count > 0:
        with open(path, "w") as f:
            f.write(str(count))
    elif os.path.exists(path):
        os.unlink(path)


def running():
    return pid() is not None and answers(SOCKET)


def active(s):
    return running() and (s["boot"] == "running" or INSTANCE in holders())


def spawn():
    argv = [os.path.join(NODE, "bin", "containerd")]
    if os.path.exists("/etc/containerd/config.toml"):
        argv += ["--config", "/etc/containerd/config.toml"]
    env = dict(os.environ, PATH=os.path.join(NODE, "bin") + ":/usr/sbin:/usr/bin:/sbin:/bin")
    log = open(os.path.join(NODE, "containerd.log"), "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
    with open(os.path.join(NODE, "containerd.pid"), "w") as f:
        f.write(str(p.pid))
    deadline = time.monotonic() + 60
    while not answers(SOCKET):
        if p.poll() is not None or time.monotonic() > deadline:
            sys.exit("containerd.service: failed to start (see %s)" % os.path.join(NODE, "containerd.log"))
        time.sleep(0.05)
    return p.pid


def kill():
    p = pid()
    if p is None:
        return None
    os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid() is not None:
        os.kill(p, signal.SIGKILL)
    return p


def containerd(verb):
    lock = open(os.path.join(NODE, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    s = state()
    mine = os.path.join(NODE, "holders", INSTANCE)
    if verb == "is-active":
        print("active" if active(s) else "inactive")
        return 0 if active(s) else 3
    if verb == "is-enabled":
        print("enabled" if s["enabled"] else "disabled")
        return 0 if s["enabled"] else 1
    if verb in ("enable", "disable"):
        s["enabled"] = verb == "enable"
        save(s)
        return 0
    if verb == "start":
        hold(mine, +1)
        if not running():
            spawn()
        return 0
    if verb == "stop":
        hold(mine, -1)
        if not holders() and s["boot"] != "running":
            kill()
        return 0
    if verb == "restart":
        old = kill()
        new = spawn()
        with open(os.path.join(RUN_DIR, "restarts.log"), "a") as f:
            f.write("%s containerd %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), old, new))
        return 0
    sys.exit("systemctl (bake sandbox): %s is not supported for containerd" % verb)


def docker(verb):
    # dockerd is this machine's (started by `sandbox up`), always running, as on an AL2 node.
    if verb == "is-active":
        print("active" if answers(DOCKER_SOCKET) else "inactive")
        return 0 if answers(DOCKER_SOCKET) else 3
    if verb == "is-enabled":
        print("enabled")
        return 0
    if verb in ("start", "enable"):
        return 0
    if verb == "restart":
        env = dict(os.environ, BAKE_SANDBOX_DIR=SANDBOX_DIR)
        return subprocess.call([PYTHON, "-m", "bake", "sandbox", "restart-runtime", "docker"], env=env)
    sys.exit("systemctl (bake sandbox): %s is not supported for docker" % verb)


def kubelet(verb):
    # No kubelet runs here. A Bottlerocket builder's bake stops it (bake_sandbox/bottlerocket.py):
    # each stop is logged, for the tests.
    if verb == "stop":
        with open(os.path.join(RUN_DIR, "kubelet.log"), "a") as f:
            f.write("%s stop\n" % time.strftime("%Y-%m-%dT%H:%M:%S"))
        return 0
    if verb == "is-active":
        print("inactive")
        return 3
    sys.exit("systemctl (bake sandbox): %s is not supported for kubelet" % verb)


args = [a for a in sys.argv[1:] if not a.startswith("-")]
if len(args) != 2:
    sys.exit("usage: systemctl is-active|is-enabled|start|stop|restart|enable|disable UNIT (bake sandbox stand-in)")
verb, unit = args[0], args[1]
if unit.endswith(".service"):
    unit = unit[: -len(".service")]
UNITS = {{"containerd": containerd, "docker": docker, "kubelet": kubelet}}
if unit not in UNITS:
    print("Unit %s.service could not be found." % unit, file=sys.stderr)
    sys.exit(4)
sys.exit(UNITS[unit](verb))
'''


def node_dir(layout: Layout) -> Path:
    return layout.root / "node"


def root_dir(layout: Layout) -> Path:
    """What the builder sees as /var/lib/containerd: the containerd part of the AMI's disk."""
    return node_dir(layout) / "root"


def bin_dir(layout: Layout) -> Path:
    return node_dir(layout) / "bin"


def tools_bin(version: str) -> Path:
    if version not in VERSIONS:
        raise SandboxError(f"containerd {version!r}: the sandbox has {', '.join(VERSIONS)}")
    return TOOLS / VERSIONS[version] / "usr" / "bin"


def _state_file(layout: Layout) -> Path:
    return node_dir(layout) / "state.json"


def state(layout: Layout) -> dict:
    return json.loads(_state_file(layout).read_text())


def _write_state(layout: Layout, s: dict) -> None:
    tmp = node_dir(layout) / ".state.json.tmp"
    tmp.write_text(json.dumps(s))
    os.replace(tmp, _state_file(layout))


def _link_binaries(layout: Layout, version: str) -> None:
    src = tools_bin(version)
    for name in BINARIES:
        if not (src / name).exists():
            raise SandboxError(f"{src / name} is missing (scripts/dev.sh setup unpacks containerd {version} there)")
        link = bin_dir(layout) / name
        link.unlink(missing_ok=True)
        link.symlink_to(src / name)


def ensure(layout: Layout) -> None:
    """The node's files: binaries of the chosen version, the stand-in, an empty holder set, and
    the state a fresh AMI boots in (containerd stopped, not enabled)."""
    for d in (node_dir(layout), root_dir(layout), bin_dir(layout), node_dir(layout) / "holders"):
        d.mkdir(parents=True, exist_ok=True)
    node_dir(layout).chmod(0o755)  # sshd's AuthorizedKeysCommand chain rules do not apply here
    if not _state_file(layout).exists():
        _write_state(layout, {"version": DEFAULT_VERSION, "boot": "stopped", "enabled": False})
    _link_binaries(layout, state(layout)["version"])
    standin = bin_dir(layout) / "systemctl"
    standin.write_text(STANDIN.format(python=sys.executable, node=str(node_dir(layout)), run_dir=str(layout.run_dir),
                                      sandbox_dir=str(layout.root), socket=SOCKET))
    standin.chmod(0o755)
    for holder in (node_dir(layout) / "holders").iterdir():  # a new boot: nobody holds it
        holder.unlink()


def systemctl(layout: Layout, *args: str, instance: str = "sandbox", check: bool = True) -> subprocess.CompletedProcess:
    """Run the stand-in in the builder's mount namespace (where /var/lib/containerd is the node's)."""
    from bake_sandbox import builder  # builder imports this module

    pid = builder.daemon(layout).pid()
    if pid is None:
        raise SandboxError("the builder's sshd is not running: `python -m bake sandbox up` first")
    argv = ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", str(bin_dir(layout) / "systemctl"), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "BAKE_SANDBOX_INSTANCE": instance})
    if check and r.returncode != 0:
        raise SandboxError(f"systemctl {' '.join(args)} on the builder failed (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()}")
    return r


def daemon(layout: Layout) -> Daemon:
    """The node's containerd as the stand-in started it (its pid file, its binary), for the
    host's looks and stops: whoever holds it (sandbox down, a version switch)."""
    return Daemon("containerd", [], node_dir(layout), program=str(bin_dir(layout) / "containerd"))


@contextmanager
def running(layout: Layout) -> Iterator[None]:
    """The node's containerd serving for the sandbox's own work (discarding images, a test's
    look), as one more instance holding it: stopped again after unless someone else holds it."""
    systemctl(layout, "start", "containerd")
    try:
        await_cri()
        yield
    finally:
        systemctl(layout, "stop", "containerd")


def await_cri(timeout: float = 60) -> None:
    """Until the CRI serves: containerd answers on its socket a moment before its CRI plugin
    does ("server is not initialized yet"), and the tests' looks talk CRI."""
    from bake import cri

    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run([sys.executable, "-I", "-S", cri.__file__, SOCKET], capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"the node's containerd CRI does not serve: {r.stderr.strip()[-300:]}")
        time.sleep(0.1)


def use(layout: Layout, version: str | None = None, boot: str | None = None) -> None:
    """Switch the builder's containerd version or the state it boots in. Stops the daemon first
    (nobody may be baking): a running daemon keeps its binary."""
    s = state(layout)
    if boot is not None and boot not in BOOT_STATES:
        raise SandboxError(f"boot state {boot!r} is not one of {', '.join(BOOT_STATES)}")
    daemon(layout).stop(timeout=30)
    for holder in (node_dir(layout) / "holders").iterdir():
        holder.unlink()
    if version is not None:
        tools_bin(version)
        _link_binaries(layout, version)
        s["version"] = version
    if boot is not None:
        s["boot"] = boot
    _write_state(layout, s)
    if s["boot"] == "running":
        systemctl(layout, "start", "containerd")


def forget_gone_instances(layout: Layout, live: set[str]) -> list[str]:
    """Drop what instances no longer running still hold (a bake killed before it stopped the
    runtime: on EC2 its machine is gone; here the shared daemon would keep running), and stop
    the daemon if nobody holds it and it boots stopped. Returns the holders dropped."""
    gone = [h.name for h in (node_dir(layout) / "holders").iterdir() if h.name.startswith("i-") and h.name not in live]
    for name in gone:
        (node_dir(layout) / "holders" / name).unlink(missing_ok=True)
    if gone and not any((node_dir(layout) / "holders").iterdir()) and state(layout)["boot"] == "stopped":
        daemon(layout).stop(timeout=30)
    return gone
