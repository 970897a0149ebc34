"""What runs on the builder for each container runtime: pull, list, forget credentials.

Every value that reaches a remote shell is quoted with shlex.quote (image references are
also checked against the OCI grammar before anything launches). Registry passwords travel
on the SSH channel's stdin, never on a command line we build or in a file we leave.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Protocol

from bake.model.images import Credential, ResolvedImage
from bake.ssh import Connection

# containerd's CRI plugin treats images with this label as its own (the kubelet sees them);
# containerd 1.7+ never garbage-collects images labelled pinned.
CRI_LABELS = ("io.cri-containerd.image=managed", "io.cri-containerd.pinned=pinned")

# Registry and network answers worth another try; anything else (not found, denied) is final.
TRANSIENT = re.compile(
    r"timeout|timed out|connection reset|connection refused|unexpected EOF|\bEOF\b|TLS handshake|"
    r"broken pipe|no route to host|temporar|too many requests|\b429\b|\b50[0234]\b|"
    r"service unavailable|bad gateway|internal server error|i/o timeout",
    re.IGNORECASE,
)


def sudo(script: str) -> str:
    """``sudo -n sh -c SCRIPT``: -n fails at once instead of waiting for a password."""
    return f"sudo -n sh -c {shlex.quote(script)}"


class Runtime(Protocol):
    name: str
    data_root: str

    def login(self, conn: Connection, cred: Credential) -> None: ...
    def pull(self, conn: Connection, image: ResolvedImage, timeout: float) -> None: ...
    def digests(self, conn: Connection, images: list[ResolvedImage]) -> dict[str, set[str]]: ...
    def logout(self, conn: Connection, registry: str) -> None: ...


class Containerd:
    """Pulls with ``ctr`` into the ``k8s.io`` namespace, the one the kubelet's CRI uses."""

    name = "containerd"
    namespace = "k8s.io"
    data_root = "/var/lib/containerd"  # content store and snapshots: where a pull needs space
    # Registry mirrors and CAs live here on EKS AMIs, as for the CRI. Without it, ctr also
    # talks plain HTTP to any registry on localhost/127.0.0.1.
    hosts_dir = "/etc/containerd/certs.d"

    def login(self, conn: Connection, cred: Credential) -> None:
        pass  # ctr takes credentials per pull, from stdin (see pull)

    def pull(self, conn: Connection, image: ResolvedImage, timeout: float) -> None:
        labels = " ".join(f"--label {shlex.quote(label)}" for label in CRI_LABELS)
        # ctr does not normalize names ("python" -> docker.io/library/python:latest); the CRI does.
        ref = shlex.quote(image.ref.canonical)
        script = (
            'IFS= read -r cred || true; set --; [ -n "$cred" ] && set -- --user "$cred"; '
            f"exec ctr -n {self.namespace} images pull --hosts-dir {self.hosts_dir} {labels} \"$@\" {ref}"
        )
        cred = image.credential
        stdin = f"{cred.username}:{cred.password}\n" if cred else "\n"
        conn.run(sudo(script), stdin=stdin, timeout=timeout, shown=f"ctr images pull {image.ref.canonical}")

    def digests(self, conn: Connection, images: list[ResolvedImage]) -> dict[str, set[str]]:
        out = conn.run(f"sudo -n ctr -n {self.namespace} images ls", timeout=120).stdout
        found: dict[str, set[str]] = {}
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) < 3:
                continue
            labels = cols[-1]
            if "io.cri-containerd.image=managed" not in labels:
                continue  # not visible to the kubelet: does not count
            found.setdefault(cols[0], set()).add(cols[2])
        return {img.ref.original: found.get(img.ref.canonical, set()) for img in images}

    def logout(self, conn: Connection, registry: str) -> None:
        pass


class Docker:
    """Pulls with the Docker CLI, for pools whose nodes still run dockerd."""

    name = "docker"
    data_root = "/var/lib/docker"

    def login(self, conn: Connection, cred: Credential) -> None:
        conn.run(
            f"sudo -n docker login --username {shlex.quote(cred.username)} --password-stdin "
            f"{shlex.quote(cred.registry)}",
            stdin=cred.password + "\n",
            timeout=120,
            shown=f"docker login {cred.registry}",
        )

    def pull(self, conn: Connection, image: ResolvedImage, timeout: float) -> None:
        conn.run(f"sudo -n docker pull --quiet {shlex.quote(image.ref.original)}", timeout=timeout)

    def digests(self, conn: Connection, images: list[ResolvedImage]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for img in images:
            res = conn.run(
                f"sudo -n docker image inspect --format '{{{{json .RepoDigests}}}}' {shlex.quote(img.ref.original)}",
                warn=True,
                timeout=120,
            )
            digests: set[str] = set()
            if res.ok:
                for repo_digest in json.loads(res.stdout.strip() or "[]"):
                    digests.add(repo_digest.rpartition("@")[2])
            found[img.ref.original] = digests
        return found

    def logout(self, conn: Connection, registry: str) -> None:
        conn.run(f"sudo -n docker logout {shlex.quote(registry)}", warn=True, timeout=60)


def runtime_for(name: str) -> Runtime:
    return {"containerd": Containerd, "docker": Docker}[name]()


# The pre-snapshot scrub: nothing instance-specific or secret stays on the AMI. Modelled on
# what EKS's own AMI build removes (amazon-eks-ami templates/shared/provisioners/cleanup.sh),
# plus registry credentials and shell history. Every node boots from this disk: a shared
# machine-id or host key would make all nodes look like one.
SCRUB_SCRIPT = r"""
set -u
rm -f /root/.docker/config.json /home/*/.docker/config.json
rm -f /etc/ssh/ssh_host_*
rm -f /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys
rm -f /root/.bash_history /home/*/.bash_history /root/.ash_history /home/*/.ash_history
rm -f /etc/hostname /etc/resolv.conf
rm -rf /var/lib/cloud/data /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/sem
rm -rf /var/lib/dhclient/* /var/lib/dhcp/dhclient.* /var/lib/NetworkManager/*.lease
rm -rf /var/lib/yum/history /var/lib/dnf/history* /var/cache/yum /var/cache/dnf
rm -rf /var/log/audit/* /var/log/journal/*
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*-[0-9]*' \) -delete 2>/dev/null
find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null
rm -f /etc/machine-id /var/lib/dbus/machine-id
touch /etc/machine-id
sync
"""
