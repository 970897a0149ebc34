"""A node's first boot over the disk a bake left: does the kubelet find every image without a pull?

After a bake the builder's containerd is stopped and ``NODE/root`` holds exactly the containerd
part of the disk the AMI's snapshot would hold. A node launched from it starts a *fresh*
containerd with the config nodeadm writes at boot (not the builder's), and the kubelet asks the
CRI ``ImageStatus`` for each image its pods name: "not present" is a pull. ``first_boot``
reproduces that as closely as this machine can:

- a copy of ``NODE/root`` (the node writes to its own volume, never to the AMI),
- a private mount namespace in which the copy is /var/lib/containerd and /run/containerd is
  empty (nothing of the builder's runtime leaks in),
- containerd 2.1 (or 1.7) with nodeadm's config for that generation, rendered from
  amazon-eks-ami's ``nodeadm/internal/containerd/config2.template.toml`` (v3) or
  ``config.template.toml`` (v2), read 2026-12-06 at 81fec2e; ``SystemdCgroup = false`` because
  this machine has no systemd,
- the CRI asked by the same program a bake uses (bake/cri.py), and
- the registries' access logs read for the time it ran: a blob or manifest fetched means the
  node would have pulled.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from bake import cri
from bake.data_volume import DEVICE, by_id
from bake_sandbox import moto, node_containerd, registries
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import BASE_AMI, Layout

SANDBOX_IMAGE = "localhost/kubernetes/pause:3.10"  # nodeadm pins the sandbox image; it need not exist here

# nodeadm's config for containerd 2.x (config2.template.toml) with its template variables filled in
# for this machine: RuntimeName runc, BinaryName the host's runc, no SOCI, CDI on (kubelet 1.32+).
NODE_CONFIG = {
    "2": """version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
address = "/run/containerd/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
discard_unpacked_layers = true

[plugins.'io.containerd.cri.v1.images'.pinned_images]
sandbox = "{sandbox}"

[plugins."io.containerd.cri.v1.images".registry]
config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
enable_cdi = true

[plugins.'io.containerd.cri.v1.runtime'.containerd]
default_runtime_name = "runc"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
SystemdCgroup = false
""",
    # config.template.toml, for containerd 1.x
    "1": """version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri".containerd]
default_runtime_name = "runc"
discard_unpacked_layers = true

[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "{sandbox}"
enable_cdi = true

[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = false
""",
}

# In the node's own namespace: its disk, an empty /run/containerd, containerd with nodeadm's
# config, then the CRI's answer (bake/cri.py on stdin) printed, then containerd stopped.
BOOT_SCRIPT = """set -e
{mount_disk}
mkdir -p /run/containerd && mount -t tmpfs tmpfs /run/containerd
PATH={bin}:$PATH {bin}/containerd --config {config} >{log} 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
i=0; until {bin}/ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 600 ] || {{ echo "containerd did not start" >&2; exit 1; }}; sleep 0.1
  kill -0 $pid 2>/dev/null || {{ echo "containerd exited" >&2; cat {log} >&2; exit 1; }}
done
# The CRI serves a moment after ctr does ("server is not initialized yet"): ask until it answers.
cat > {tmp}/cri.py
i=0; until {python} -I -S {tmp}/cri.py /run/containerd/containerd.sock {refs} >{tmp}/answer 2>{tmp}/cri.err; do
  i=$((i+1)); [ $i -lt 300 ] || {{ cat {tmp}/cri.err >&2; exit 1; }}; sleep 0.1
done
cat {tmp}/answer
"""

REQUEST = re.compile(r'"(GET|HEAD) (/v2/\S+/(?:blobs|manifests)/\S+) HTTP')


@dataclass(frozen=True)
class FirstBoot:
    runtime: str  # "containerd 2.1.9+unknown"
    images: dict[str, dict | None]  # ref -> the CRI's ImageStatus (id, repo_tags, repo_digests, pinned) or None
    registry_requests: list[str]  # "GET /v2/.../blobs/..." the registries served meanwhile
    volume_label: str | None = None  # a node from a cache snapshot: its filesystem's label (the node's mount unit's key)

    def missing(self) -> list[str]:
        return [ref for ref, found in self.images.items() if found is None]

    def unpinned(self) -> list[str]:
        return [ref for ref, found in self.images.items() if found is not None and not found["pinned"]]


def _logs(layout: Layout) -> list[Path]:
    return [registries.sample_root(layout) / "registry.log", registries.ecr_root(layout) / "registry.log"]


def _sizes(paths: list[Path]) -> list[int]:
    return [p.stat().st_size if p.exists() else 0 for p in paths]


def first_boot(layout: Layout, refs: list[str], version: str = node_containerd.DEFAULT_VERSION) -> FirstBoot:
    """Boot a fresh containerd ``version`` with nodeadm's config over a copy of the node's disk and
    ask the CRI for ``refs``, as the kubelet does. The builder's containerd must be stopped (a
    bake leaves it so): the AMI's snapshot is taken of a quiet disk."""
    if node_containerd.daemon(layout).running():
        raise SandboxError("the builder's containerd is running: a node boots from the disk of a stopped one")
    with tempfile.TemporaryDirectory(prefix="bake-first-boot-disk-") as tmp:
        disk = Path(tmp) / "disk"
        subprocess.run(["cp", "-a", "--reflink=auto", str(node_containerd.root_dir(layout)), str(disk)], check=True)
        return _boot(layout, refs, version, f"mount --bind {shlex.quote(str(disk))} /var/lib/containerd")


def first_boot_from_snapshot(layout: Layout, snapshot_id: str, refs: list[str],
                             version: str = node_containerd.DEFAULT_VERSION, region: str = moto.REGION,
                             image_id: str = BASE_AMI) -> FirstBoot:
    """A data-volume pool's node (issue 24): launched in moto with the cache snapshot mapped at the
    data device, so its volume is a copy of the snapshot's bytes behind a loop device
    (bake_sandbox.moto_volumes); mounted at /var/lib/containerd as the node's user data does, then
    booted as ``first_boot``. The node is terminated after (its volume goes with it). ``region``
    and ``image_id``: a copy region's node, launched from that region's stock AMI."""
    ec2 = moto.client(layout, "ec2", region)
    node = ec2.run_instances(ImageId=image_id, InstanceType="m5.large", MinCount=1, MaxCount=1, BlockDeviceMappings=[
        {"DeviceName": DEVICE, "Ebs": {"SnapshotId": snapshot_id, "DeleteOnTermination": True}}])["Instances"][0]
    try:
        [volume] = [m["Ebs"]["VolumeId"] for m in node["BlockDeviceMappings"] if m["DeviceName"] == DEVICE]
        label = subprocess.run(["blkid", "-s", "LABEL", "-o", "value", by_id(volume)], capture_output=True, text=True).stdout
        boot = _boot(layout, refs, version, f"mount {shlex.quote(by_id(volume))} /var/lib/containerd")
        return replace(boot, volume_label=label.strip() or None)
    finally:
        ec2.terminate_instances(InstanceIds=[node["InstanceId"]])


def _boot(layout: Layout, refs: list[str], version: str, mount_disk: str) -> FirstBoot:
    binaries = node_containerd.tools_bin(version)
    template = NODE_CONFIG["2" if version.startswith("2") else "1"]
    logs = _logs(layout)
    with tempfile.TemporaryDirectory(prefix="bake-first-boot-") as tmp:
        config, log = Path(tmp) / "config.toml", Path(tmp) / "containerd.log"
        config.write_text(template.format(sandbox=SANDBOX_IMAGE))
        script = BOOT_SCRIPT.format(tmp=shlex.quote(tmp), mount_disk=mount_disk, bin=shlex.quote(str(binaries)),
                                    config=shlex.quote(str(config)), log=shlex.quote(str(log)),
                                    python=shlex.quote(sys.executable), refs=" ".join(map(shlex.quote, refs)))
        before = _sizes(logs)
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           input=Path(cri.__file__).read_text(), capture_output=True, text=True, timeout=300)
        requests = _requests_since(logs, before)
        if r.returncode != 0:
            raise SandboxError(f"first boot failed (exit {r.returncode}): {r.stderr.strip()[-1500:]}")
    data = json.loads(r.stdout)
    return FirstBoot(f"{data['runtime']} {data['version']}", data["images"], requests)


def _requests_since(logs: list[Path], sizes: list[int]) -> list[str]:
    out: list[str] = []
    for path, size in zip(logs, sizes):
        if not path.exists():
            continue
        with open(path, "rb") as f:
            f.seek(size)
            text = f.read().decode(errors="replace")
        out += [f"{m.group(1)} {m.group(2)}" for m in REQUEST.finditer(text)]
    return out

