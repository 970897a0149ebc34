"""``python -m bake sandbox restart-runtime docker|containerd``: the sandbox's ``systemctl restart``.

There is no systemd here: ``up`` starts containerd and dockerd as plain processes. A GPU bake's
``gpu_settings.restart_command`` in the sandbox tests runs this over SSH, that is inside the
builder's mount namespace (the overlays over /etc, /var, /home, /root). A daemon started from
there would read the builder's /etc and keep its state in the overlay's /var, and every later
test would see a different daemon. So this first moves into the host's mount namespace (the one
the sandbox's moto server runs in, which ``up`` started from the host) and restarts the daemon
exactly as ``up`` started it, with the host's configuration.

The consequence, stated in docs/gpu.md: the daemon.json / config.toml a GPU bake edits in the
builder's /etc is NOT what the restarted daemon reads here. Tests check those files in the
overlay's upper dir and with the daemons' own parsers instead.

Each restart appends a line to RUN_DIR/restarts.log (``TIME RUNTIME OLD_PID NEW_PID``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from bake.sandbox import moto, runtimes
from bake.sandbox.errors import SandboxError
from bake.sandbox.layout import Layout

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
    if which == "docker":
        daemon, ready, what = runtimes.dockerd_daemon(layout), runtimes.dockerd_up, "answering on the docker socket"
    else:
        daemon, ready, what = runtimes.containerd_daemon(layout), runtimes.containerd_up, "answering on the containerd socket"
    old = daemon.pid()
    if old is None:
        raise SandboxError(f"{daemon.name} was not started by the sandbox: not restarting a daemon it does not own")
    daemon.stop(timeout=20)
    new = daemon.start()
    daemon.wait_ready(ready, timeout=90, what=what)
    if which == "containerd":
        # dockerd is containerd's client: it reconnects by itself; wait until it answers again.
        deadline = time.monotonic() + 60
        while not runtimes.dockerd_up() and time.monotonic() < deadline:
            time.sleep(0.2)
    with open(restart_log(layout), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {which} {old} {new}\n")
    say(f"{daemon.name} restarted (pid {old} -> {new})")
