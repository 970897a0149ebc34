"""The builder's container runtime as found: started for the bake if it was not, stopped again
before the snapshot, so that the AMI boots exactly as its base did.

On an EKS AL2023 AMI containerd is installed but neither running nor enabled: nodeadm's
``nodeadm-run.service`` writes its config and starts it at first boot (docs/containerd.md).
A bake that left it running on the builder would snapshot a live content store; one that
enabled it would start it at boot before nodeadm wrote its config. AL2's dockerd is enabled
and running, and is left so.
"""

from __future__ import annotations

import shlex

from bake.errors import BakeError
from bake.runtimes import runtime_for
from bake.ssh import sudo
from bake.steps.base import BuildState

READY_TIMEOUT = 120
# One round trip: the unit's state, whether it is enabled, and the daemon's version.
PROBE = "systemctl is-active {unit}; systemctl is-enabled {unit}; {version} 2>/dev/null || true"
VERSION = {"containerd": "containerd --version", "docker": "docker version --format '{{.Server.Version}}'"}


def parse_probe(text: str) -> tuple[bool, bool, str]:
    """(active, enabled, the version's last word) from PROBE's three lines."""
    lines = [line.strip() for line in text.splitlines()] + ["", "", ""]
    words = lines[2].split()
    # `containerd --version`: "containerd github.com/containerd/containerd/v2 2.1.9 <rev>"
    version = next((w for w in words if w[:1].isdigit() or (w[:1] == "v" and w[1:2].isdigit())), "")
    return lines[0] == "active", lines[1] == "enabled", version


class StepRuntimeUp:
    name = "runtime"
    title = "starting the container runtime if it is stopped"

    def run(self, st: BuildState) -> None:
        base = runtime_for(st.plan.pool.runtime, st.plan.pool.os)
        unit = shlex.quote(base.service)
        probe = PROBE.format(unit=unit, version=VERSION[base.name])
        res = st.conn.run(sudo(probe), timeout=120, shown=f"systemctl is-active {base.service}")
        active, enabled, version = parse_probe(res.stdout)
        st.runtime_found = "running" if active else "stopped"
        st.runtime_enabled = enabled
        if not active:
            st.emit("step", f"{base.service} is not running (as on a fresh EKS AL2023 AMI): systemctl start "
                            f"{base.service}", step=self.name)
            st.conn.run(sudo(f"systemctl start {unit}"), timeout=READY_TIMEOUT, shown=f"systemctl start {base.service}")
            st.runtime_started = True
            if not version:
                version = parse_probe(st.conn.run(sudo(probe), timeout=120, shown="containerd --version").stdout)[2]
        st.runtime = base.generation(version)
        try:
            st.runtime.await_ready(st.conn, READY_TIMEOUT)
        except BakeError as e:
            raise BakeError(f"pool {st.plan.pool.name}: {base.service} does not serve after `systemctl start`: {e}") from None
        st.emit("step", f"{base.name} {version or '(version unknown)'}: {st.runtime_found} at boot, "
                        f"{'enabled' if enabled else 'not enabled'}", step=self.name,
                data={"found": st.runtime_found, "enabled": enabled, "version": version})

    def cleanup(self, st: BuildState) -> None:
        # A failed bake: the builder is terminated anyway, but a kept one (--keep-on-failure)
        # should not serve on the socket either. Failures are the runner's to report.
        restore(st)


class StepRuntimeDown:
    """Before the scrub and the snapshot: the runtime as the bake found it."""

    name = "runtime-restore"
    title = "leaving the container runtime as it was found"

    def run(self, st: BuildState) -> None:
        stopped = restore(st)
        st.emit("step", f"{st.runtime.service if st.runtime else st.plan.pool.runtime} "
                        f"{'stopped again' if stopped else 'left ' + (st.runtime_found or 'as found')}"
                        f"{'' if st.runtime_enabled else ', not enabled'}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass


def restore(st: BuildState) -> bool:
    """Stop what the bake started and disable what it found disabled (a GPU edit or a toolkit
    may enable it); returns whether it stopped the runtime."""
    if st.runtime_found is None or st.runtime_restored:
        return False
    service = st.container_runtime().service
    unit = shlex.quote(service)
    script = []
    if st.runtime_started:
        script.append(f"systemctl stop {unit}")
    if not st.runtime_enabled:
        script.append(f"if systemctl is-enabled {unit} >/dev/null 2>&1; then systemctl disable {unit}; fi")
    st.conn.run(sudo(" && ".join(script) or "true"), timeout=READY_TIMEOUT, shown=f"systemctl stop {service}")
    st.runtime_restored = True
    return st.runtime_started


class StepStopKubelet:
    """A Bottlerocket builder boots its kubelet as a node does (without a cluster to join it
    restarts over and over); its image garbage collection must not run beside the pulls. Stopped
    before them, as aws-samples/bottlerocket-images-cache does (snapshot.sh: `sheltie systemctl
    stop kubelet`, read 2026-12-07). Not started again: the builder is stopped and only its data
    volume is kept."""

    name = "kubelet"
    title = "stopping the builder's kubelet"

    def run(self, st: BuildState) -> None:
        st.conn.run("sudo -n systemctl stop kubelet", timeout=READY_TIMEOUT, shown="systemctl stop kubelet")
        st.emit("step", "kubelet stopped: no image garbage collection during the pulls", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass
