"""``python -m bake sandbox restart-runtime docker|containerd``: the sandbox's ``systemctl restart``.

containerd is the node's (``node_containerd``): its ``systemctl`` stand-in restarts it in the
builder's mount namespace, with the builder's /etc/containerd/config.toml, the file a GPU bake
edits. dockerd is this machine's: a GPU bake's ``gpu_settings.restart_command`` runs this over
SSH, inside the builder's overlays, and a dockerd started from there would keep its state in the
overlay's /var. So for docker this first moves into the host's mount namespace (the one the
sandbox's moto server runs in) and restarts dockerd exactly as ``up`` started it, with the
host's configuration: the daemon.json a GPU bake edits in the builder's /etc is NOT what the
restarted dockerd reads (docs/gpu.md); tests check that file with dockerd's own parser.

Each restart appends a line to RUN_DIR/restarts.log (``TIME RUNTIME OLD_PID NEW_PID``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from bake_sandbox import moto, node_containerd, runtimes
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import Layout

RUNTIMES = ("docker", "containerd")


def restart_log(layout: Layout):  # noqa: ANN201 - a Path
    return layout.run_dir / "restarts.log"


def _host_namespace(layout: Layout) -> str:
    pid = moto.daemon(layout).pid()
    if pid is None:
        raise SandboxError("the sandbox's moto server is not running: cannot find the host's mount namespace")
    return f"/proc/{pid}/ns/mnt"


def restart_runtime(layout: Layout, which: str, log: Callable[[str], None] | None = None) -> None:
    say = log or (lambda message: None)
    if which not in RUNTIMES:
        raise SandboxError(f"restart-runtime: {which!r} is not one of {', '.join(RUNTIMES)}")
    if which == "containerd":
        # The node's containerd lives in the builder's namespace: its systemctl restarts it there,
        # with the builder's /etc/containerd/config.toml (what a GPU bake edited).
        node_containerd.systemctl(layout, "restart", "containerd",
                                  instance=os.environ.get("BAKE_SANDBOX_INSTANCE", "sandbox"))
        say("the node's containerd restarted")
        return
    host_ns = _host_namespace(layout)
    if os.readlink("/proc/self/ns/mnt") != os.readlink(host_ns):
        # Over SSH, in the builder's overlays: run again in the host's namespace.
        argv = ["nsenter", f"--mount={host_ns}", "--", sys.executable, "-m", "bake", "sandbox", "restart-runtime", which]
        env = {**os.environ, "BAKE_SANDBOX_DIR": str(layout.root)}
        r = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
        sys.stderr.write(r.stderr)
        if r.returncode != 0:
            raise SandboxError(f"restart-runtime {which} in the host's mount namespace failed (exit {r.returncode})")
        return
    daemon, ready, what = runtimes.dockerd_daemon(layout), runtimes.dockerd_up, "answering on the docker socket"
    old = daemon.pid()
    if old is None:
        raise SandboxError(f"{daemon.name} was not started by the sandbox: not restarting a daemon it does not own")
    daemon.stop(timeout=20)
    new = daemon.start()
    daemon.wait_ready(ready, timeout=90, what=what)
    with open(restart_log(layout), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {which} {old} {new}\n")
    say(f"{daemon.name} restarted (pid {old} -> {new})")
