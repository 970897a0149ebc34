"""What runs on the builder for each container runtime: pull, list, forget credentials.

Every value that reaches a remote shell is quoted with shlex.quote (image references are
also checked against the OCI grammar before anything launches). Registry passwords travel
on the SSH channel's stdin, never on a command line we build or in a file we leave.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bake import cache, cri, gpu, image_store
from bake.cache import CachePaths
from bake.errors import BakeError
from bake.model.images import Credential, ResolvedImage
from bake.model.refs import parse_reference
from bake.pull_progress import CtrProgressParser, PullProgress
from bake.references import GC_ADVICE, references, reports_pinned, runtime_version
from bake.polling import Every, wait_until
from bake.ssh import Connection, Result, UnexpectedExit, sudo

# containerd's CRI plugin treats images with this label as its own (the kubelet sees them);
# containerd 1.6.22+, 1.7.3+ and 2.x report images labelled pinned to the kubelet, whose image GC spares them.
CRI_LABELS = ("io.cri-containerd.image=managed", "io.cri-containerd.pinned=pinned")

# Registry and network answers worth another try; anything else (not found, denied) is final.
CRI_POLL = 0.2  # seconds between CRI questions: it answers within moments of containerd
TRANSIENT = re.compile(
    r"timeout|timed out|connection reset|connection refused|unexpected EOF|\bEOF\b|TLS handshake|"
    r"broken pipe|no route to host|temporar|too many requests|\b429\b|\b50[0234]\b|"
    r"service unavailable|bad gateway|internal server error|i/o timeout",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Found:
    """What the node's runtime answers for one reference: the image id and its digests."""

    id: str
    repo_digests: tuple[str, ...] = ()
    pinned: bool = False


@dataclass(frozen=True)
class Answer:
    runtime: str  # as the runtime names itself: "containerd", "docker"
    version: str
    images: dict[str, Found | None]  # None: "not present", the answer that makes the kubelet pull


class Runtime(Protocol):
    name: str
    service: str  # the systemd unit that runs it on the node
    digest_aliases: bool  # whether an alias can also be held as ALIAS@DIGEST
    data_root: str
    config_version: int | None  # containerd's config.toml version this generation writes (GPU edit)

    def generation(self, version: str) -> Runtime: ...
    def restart_command(self) -> str: ...
    def await_ready(self, conn: Connection, timeout: float) -> None: ...
    def discard_compressed(self, conn: Connection, images: Sequence[ResolvedImage]) -> int: ...
    def cache_paths(self, conn: Connection, images: Sequence[ResolvedImage]) -> CachePaths: ...
    def pin_problem(self, answer: Answer, unpinned: list[str]) -> tuple[str, bool] | None: ...
    # How the node's runtime is asked (verify), pinned or not, and the GPU part: the config file
    # that makes nvidia its default, the validation line, names and removal in its own CLI.
    verifier: str
    reports_pins: bool
    gpu_config_path: str
    gpu_validate: str
    nvidia_ctk_runtime: str | None

    def cli_name(self, image: ResolvedImage) -> str: ...
    def remove_command(self, ref: str) -> str: ...
    def merge_gpu_config(self, text: str | None, runtime_path: str) -> str: ...
    def gpu_default(self, text: str) -> tuple[str | None, str | None]: ...

    def login(self, conn: Connection, cred: Credential) -> None: ...
    def pull(self, conn: Connection, image: ResolvedImage, timeout: float,
             on_progress: Callable[[PullProgress], None] | None = None) -> None: ...
    def add_references(self, conn: Connection, image: ResolvedImage, aliases: list[str]) -> str: ...
    def pulled_digests(self, conn: Connection, image: ResolvedImage) -> set[str]: ...
    def lookup(self, conn: Connection, refs: list[str]) -> Answer: ...
    def logout(self, conn: Connection, registry: str) -> None: ...


class Containerd:
    """containerd 1.x (1.6, 1.7): pulls with ``ctr`` into the ``k8s.io`` namespace, the one the
    kubelet's CRI uses; config.toml version 2. ``generation`` picks the class of the version the
    builder runs (``Containerd2`` for 2.x)."""

    name = "containerd"
    service = "containerd"
    config_version = 2
    verifier = "the CRI"
    reports_pins = True
    gpu_config_path = "/etc/containerd/config.toml"
    # What the CRI's nvidia default runtime does: runc v2 running nvidia-container-runtime.
    gpu_validate = ("ctr -n k8s.io run --rm --runc-binary {runtime_path} --env NVIDIA_VISIBLE_DEVICES=all "
                    "{image} {name} {command}")
    nvidia_ctk_runtime = "containerd"  # `nvidia-ctk runtime configure --runtime=containerd`
    digest_aliases = True
    namespace = "k8s.io"
    cri_wait = 5.0  # seconds for the CRI to learn of a pull (containerd tells it by an event)
    version = ""  # as the builder's containerd names itself, once known (``generation``)
    data_root = "/var/lib/containerd"  # content store and snapshots: where a pull needs space
    # Registry mirrors and CAs live here on EKS AMIs, as for the CRI. Without it, ctr also
    # talks plain HTTP to any registry on localhost/127.0.0.1.
    hosts_dir = "/etc/containerd/certs.d"

    def __init__(self, socket: str = "/run/containerd/containerd.sock"):
        # containerd's socket, where the kubelet's CRI calls go on EKS AMIs; ctr uses it too
        self.socket = socket
        self.ctr = f"ctr --address {shlex.quote(socket)} -n {self.namespace}"

    def generation(self, version: str) -> Containerd:
        """The class for the version ``containerd --version`` printed (same socket)."""
        major = runtime_version(version)[:1]
        cls = Containerd2 if major and major[0] >= 2 else Containerd
        found = cls(self.socket)
        found.version = version
        return found

    def restart_command(self) -> str:
        return f"systemctl restart {self.service}"

    def await_ready(self, conn: Connection, timeout: float) -> None:
        self.await_cri(conn, timeout)

    def cli_name(self, image: ResolvedImage) -> str:
        return image.ref.canonical  # ctr does not normalize names; the CRI does

    def remove_command(self, ref: str) -> str:
        return f"{self.ctr} images rm {shlex.quote(ref)}"

    def merge_gpu_config(self, text: str | None, runtime_path: str) -> str:
        return gpu.merge_containerd_toml(text, runtime_path, empty_version=self.config_version)

    def gpu_default(self, text: str) -> tuple[str | None, str | None]:
        return gpu.containerd_default(text)

    def login(self, conn: Connection, cred: Credential) -> None:
        pass  # ctr takes credentials per pull, from stdin (see pull)

    def pull(self, conn: Connection, image: ResolvedImage, timeout: float,
             on_progress: Callable[[PullProgress], None] | None = None) -> None:
        labels = " ".join(f"--label {shlex.quote(label)}" for label in CRI_LABELS)
        # ctr does not normalize names ("python" -> docker.io/library/python:latest); the CRI does.
        ref = shlex.quote(image.ref.canonical)
        script = (
            'IFS= read -r cred || true; set --; [ -n "$cred" ] && set -- --user "$cred"; '
            f"exec {self.ctr} images pull --hosts-dir {self.hosts_dir} {labels} \"$@\" {ref}"
        )
        cred = image.credential
        stdin = f"{cred.username}:{cred.password}\n" if cred else "\n"
        parser = CtrProgressParser()

        def progress(chunk: bytes) -> None:
            if on_progress and (found := parser.feed(chunk)):
                on_progress(found)

        conn.run(sudo(script), stdin=stdin, timeout=timeout, shown=f"ctr images pull {image.ref.canonical}", on_stdout=progress)

    def pulled_digests(self, conn: Connection, image: ResolvedImage) -> set[str]:
        """The manifest digest the pulled tag names in containerd (`ctr images ls`' DIGEST)."""
        source = image.ref.canonical
        out = conn.run(sudo(f"exec {self.ctr} images ls {shlex.quote('name==' + source)}"), timeout=120,
                       shown=f"ctr images ls {source}").stdout
        return {cols[2] for cols in map(str.split, out.splitlines()[1:]) if len(cols) >= 3 and cols[0] == source}

    def add_references(self, conn: Connection, image: ResolvedImage, aliases: list[str]) -> str:
        """Name the pulled image as a kubelet's pull would (repo@digest, the image id) and by
        its aliases; ``ctr images tag`` copies the source's CRI labels to every new name.
        Returns the image id the CRI reports."""
        source = image.ref.canonical
        found = self._await(conn, [source]).get(source)
        if found is None:
            raise BakeError(f"image {image.ref.original}: the CRI does not report {source} after its pull")
        targets = [r for r in references(image, aliases, found.id, digest_aliases=True) if r != source]
        command = sudo(f"exec {self.ctr} images tag --force {shlex.quote(source)} " + " ".join(map(shlex.quote, targets)))
        shown = f"ctr images tag {source} (+{len(targets)} references)"
        # Two bakes sharing one containerd (the sandbox's builders all do) may name the same
        # image at once: containerd then answers "already exists" for a name the other created.
        # Twice half a second apart, then a third time whose failure is the error.
        wait_until(lambda: conn.run(command, timeout=120, shown=shown, warn=True).ok or None, Every(0.5), conn.cancel,
                   timeout=2 * 0.5, on_timeout=lambda: conn.run(command, timeout=120, shown=shown))
        self._await(conn, targets)  # verify then judges what the CRI reports
        return found.id

    def await_cri(self, conn: Connection, timeout: float) -> None:
        """Until the CRI answers its Version: a restarted containerd answers ``ctr`` a moment
        before its CRI plugin serves (and the kubelet, like the pulls' naming, talks CRI)."""
        failed: list[UnexpectedExit] = []

        def answers() -> bool | None:
            try:
                self.lookup(conn, [])
                return True
            except UnexpectedExit as e:
                failed[:] = [e]
                return None

        def expired() -> bool:
            raise failed[0]

        wait_until(answers, Every(CRI_POLL), conn.cancel, timeout=timeout, on_timeout=expired, last_look=True)

    def _await(self, conn: Connection, refs: list[str]) -> dict[str, Found | None]:
        """The CRI learns of new names from containerd's events, a moment after ctr returns:
        ask until it reports every one of ``refs`` or ``cri_wait`` passes."""
        seen: dict[str, Found | None] = {}

        def reported() -> dict[str, Found | None] | None:
            seen.clear()
            seen.update(self.lookup(conn, refs).images)
            return dict(seen) if all(seen.values()) else None

        return wait_until(reported, Every(CRI_POLL), conn.cancel, timeout=self.cri_wait, on_timeout=lambda: dict(seen),
                          last_look=True)

    def lookup(self, conn: Connection, refs: list[str]) -> Answer:
        """Ask the CRI on the builder, as the kubelet does: ImageStatus for every reference
        (bake/cri.py, run by the builder's python3 with its source on stdin). It needs only the
        standard library: -S skips site-packages and their .pth files (a quicker start), -I the
        builder's PYTHON* variables and user site."""
        res = conn.run(
            "sudo -n python3 -I -S - " + " ".join(map(shlex.quote, [self.socket, *refs])),
            stdin=CRI_PROGRAM, timeout=300, shown=f"CRI ImageStatus x{len(refs)}",
        )
        data = json.loads(res.stdout)
        images = {
            ref: Found(v["id"], tuple(v["repo_digests"]), bool(v["pinned"])) if v else None
            for ref, v in data["images"].items()
        }
        return Answer(data["runtime"], data["version"], images)

    def logout(self, conn: Connection, registry: str) -> None:
        pass

    def cache_paths(self, conn: Connection, images: Sequence[ResolvedImage]) -> CachePaths:
        return cache.containerd_paths(conn, images, self.ctr_bare)

    @property
    def ctr_bare(self) -> str:
        return f"ctr --address {shlex.quote(self.socket)}"

    def discard_compressed(self, conn: Connection, images: Sequence[ResolvedImage]) -> int:
        """Leave the images as a node's containerd keeps them: nodeadm's config sets
        ``discard_unpacked_layers = true`` (its v2 and v3 templates alike), so a node holds the
        unpacked snapshots, manifests and configs, not the compressed layer blobs. The blobs go
        (the manifests' garbage-collection references to them first, as the CRI's own discarding
        pull never sets them); returns how many blobs left."""
        listing = conn.run(sudo(f"exec {self.ctr} content ls"), timeout=300, shown="ctr content ls").stdout
        refs = cache.layer_references([img.digest for img in images], cache.parse_content_labels(listing))
        if not refs.layers:
            return 0
        script = "set -e\n" + "".join(
            f"{self.ctr} content label {shlex.quote(m)} " + " ".join(shlex.quote(k + "=") for k in keys) + " >/dev/null\n"
            for m, keys in sorted(refs.labels.items())
        ) + f"{self.ctr} content rm " + " ".join(map(shlex.quote, refs.layers)) + " >/dev/null\n" + (
            # containerd frees the blobs' files in its next garbage collection, which runs
            # asynchronously; removing a lease with --sync runs one now, so the files are gone
            # before the cache is measured and the runtime stopped (it may never run after).
            # (its first word, by the shell alone: a Bottlerocket host has no awk or sed)
            f"lease=$({self.ctr} leases create --expires 1m); lease=${{lease%%[[:space:]]*}}\n"
            f"{self.ctr} leases rm --sync \"$lease\"\n")
        conn.run(sudo(script), timeout=300, shown=f"discard {len(refs.layers)} compressed layer(s)")
        return len(refs.layers)

    def pin_problem(self, answer: Answer, unpinned: list[str]) -> tuple[str, bool] | None:
        """What to say when the CRI reports images unpinned, and whether the bake fails: the
        CRI's answer decides; the version only says why. A containerd that predates pinning
        (1.6 before 1.6.22, 1.7 before 1.7.3) cannot do better: a warning. One that should
        honour it and does not: the bake fails."""
        if not unpinned:
            return None
        if not reports_pinned(answer.runtime, answer.version):
            return f"{answer.runtime} {answer.version} does not report pinned images: {GC_ADVICE}", False
        return (f"{self.verifier} ({answer.runtime} {answer.version}) does not report pinned for: {', '.join(unpinned)}; "
                "the kubelet's image GC could remove them"), True


class Containerd2(Containerd):
    """containerd 2.x, as every EKS AL2023 AMI since late 2025 runs it (2.1): config.toml version
    3 (``io.containerd.cri.v1.*``); ``ctr images pull`` goes through the transfer service and
    prints another progress display, which the same parser reads (bake.pull_progress)."""

    config_version = 3


class StoreContainerd(Containerd2):
    """containerd asked through its image store with ``ctr`` instead of through the CRI
    (bake.image_store): a Bottlerocket builder, whose host has no interpreter to run the CRI
    client (bake/bottlerocket.py). The same facts, read where the CRI reads them."""

    verifier = "containerd's image store (ctr: no CRI client runs on Bottlerocket)"

    def generation(self, version: str) -> StoreContainerd:
        found = StoreContainerd(self.socket)
        found.version = version
        return found

    def lookup(self, conn: Connection, refs: list[str]) -> Answer:
        return image_store.lookup(conn, self.ctr, refs)


class Docker:
    """Pulls with the Docker CLI, for pools whose nodes still run dockerd."""

    name = "docker"
    service = "docker"
    config_version = None
    verifier = "docker"
    reports_pins = False  # dockerd has no pinning; docs/platform.md says what keeps the cache
    gpu_config_path = "/etc/docker/daemon.json"
    gpu_validate = "docker run --rm --runtime=nvidia {image} {command}"
    nvidia_ctk_runtime = None  # daemon.json is merged here
    digest_aliases = False  # `docker tag` refuses a target with a digest
    data_root = "/var/lib/docker"
    version = ""

    def generation(self, version: str) -> Docker:
        found = Docker()
        found.version = version
        return found

    def restart_command(self) -> str:
        return f"systemctl restart {self.service}"

    def cli_name(self, image: ResolvedImage) -> str:
        return image.ref.original

    def remove_command(self, ref: str) -> str:
        return f"docker image rm {shlex.quote(ref)}"

    def merge_gpu_config(self, text: str | None, runtime_path: str) -> str:
        return gpu.merge_daemon_json(text, runtime_path)

    def gpu_default(self, text: str) -> tuple[str | None, str | None]:
        return gpu.docker_default(text)

    def await_ready(self, conn: Connection, timeout: float) -> None:
        last: list[Result] = []

        def answers() -> bool | None:
            last[:] = [conn.run(sudo("docker version >/dev/null 2>&1"), warn=True, timeout=60, shown="docker version")]
            return last[0].ok or None

        def expired() -> bool:
            raise UnexpectedExit(last[0], "wait for docker")

        wait_until(answers, Every(1.0), conn.cancel, timeout=timeout, on_timeout=expired)

    def discard_compressed(self, conn: Connection, images: Sequence[ResolvedImage]) -> int:
        return 0  # dockerd (overlay2) keeps no compressed copy

    def cache_paths(self, conn: Connection, images: Sequence[ResolvedImage]) -> CachePaths:
        return cache.docker_paths(conn, images)

    def pin_problem(self, answer: Answer, unpinned: list[str]) -> tuple[str, bool] | None:
        return None

    def login(self, conn: Connection, cred: Credential) -> None:
        conn.run(
            f"sudo -n docker login --username {shlex.quote(cred.username)} --password-stdin "
            f"{shlex.quote(cred.registry)}",
            stdin=cred.password + "\n",
            timeout=120,
            shown=f"docker login {cred.registry}",
        )

    def pull(self, conn: Connection, image: ResolvedImage, timeout: float,
             on_progress: Callable[[PullProgress], None] | None = None) -> None:
        # docker pull prints no byte counts without a terminal: no progress to report.
        conn.run(f"sudo -n docker pull --quiet {shlex.quote(image.ref.original)}", timeout=timeout)

    def pulled_digests(self, conn: Connection, image: ResolvedImage) -> set[str]:
        """The digests dockerd records for the pulled tag's image (its RepoDigests)."""
        res = conn.run(sudo("exec docker image inspect --format '{{range .RepoDigests}}{{.}} {{end}}' "
                            + shlex.quote(image.ref.original)), timeout=120, shown=f"docker image inspect {image.ref.original}")
        return {r.rpartition("@")[2] for r in res.stdout.split() if "@" in r}

    def add_references(self, conn: Connection, image: ResolvedImage, aliases: list[str]) -> str:
        """dockerd records repo@digest on a pull by tag (`docker image inspect repo@digest`
        finds it); only the aliases need adding, as tags."""
        source = shlex.quote(image.ref.original)
        tags = [a for a in aliases if parse_reference(a).tag]
        script = "".join(f"docker tag {source} {shlex.quote(t)} && " for t in tags)
        res = conn.run(sudo(f"{script}exec docker image inspect --format '{{{{.Id}}}}' {source}"), timeout=120,
                       shown=f"docker tag {image.ref.original} (+{len(tags)} aliases)")
        return res.stdout.strip()

    def lookup(self, conn: Connection, refs: list[str]) -> Answer:
        """`docker image inspect` for every reference: the daemon's version, then one line per
        reference in order, "ID DIGEST..." or empty."""
        script = (
            "docker version --format '{{.Server.Version}}' 2>/dev/null || echo; for r in "
            + " ".join(map(shlex.quote, refs))
            + """; do docker image inspect --format '{{.Id}}{{range .RepoDigests}} {{.}}{{end}}' "$r" 2>/dev/null || echo; done"""
        )
        lines = conn.run(sudo(script), timeout=300, shown=f"docker image inspect x{len(refs)}").stdout.split("\n")
        lines += [""] * (len(refs) + 1 - len(lines))
        images: dict[str, Found | None] = {}
        for ref, line in zip(refs, lines[1:]):
            words = line.split()
            images[ref] = Found(words[0], tuple(words[1:])) if words else None
        return Answer("docker", lines[0].strip(), images)

    def logout(self, conn: Connection, registry: str) -> None:
        conn.run(f"sudo -n docker logout {shlex.quote(registry)}", warn=True, timeout=60)


# The CRI client, sent to the builder's python3 on stdin (it leaves no file behind).
CRI_PROGRAM = Path(cri.__file__).read_text(encoding="utf-8")


def runtime_for(name: str, os: str = "al2023") -> Runtime:
    """The pool's runtime family before the builder says which generation it runs."""
    if os == "bottlerocket":
        return StoreContainerd()
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
