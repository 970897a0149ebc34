"""Giving back the disk that pushed test images took: registry, containerd and dockerd.

Each image a test pushes (random content, so never shared) lands three times on this machine's
one disk: in the registry's storage, in containerd's content store and unpacked in its
snapshots (or in dockerd's). A whole suite pushed several GB, and nothing gave it back: runs on a
machine accumulated until the disk was full (a CI run failed with ENOSPC). ``discard`` removes
the images a sandbox pushed, by repository and by manifest digest, so every name a bake gave them
(tag, ``repo@digest``, the CRI's image id, aliases) goes too; ``collect_registry_garbage`` then
frees the registry's blobs, which distribution only does offline.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import requests

from bake_sandbox import node_containerd, registries
from bake_sandbox.errors import SandboxError
from bake_sandbox.images import ACCEPT
from bake_sandbox.layout import SYSTEM_CA_BUNDLE, Layout
from bake_sandbox.process import run
from bake_sandbox.registry import BINARY, stop_pidfile
from bake_sandbox.runtimes import CONTAINERD_SOCKET, dockerd_up


@dataclass(frozen=True)
class Pushed:
    """One push: ``ref`` is HOST[:PORT]/REPO:TAG, ``digest`` its manifest digest."""

    ref: str
    digest: str
    auth: tuple[str, str] | None = None

    @property
    def repository(self) -> str:  # HOST[:PORT]/REPO
        return _name_repository(self.ref)


def _name_repository(name: str) -> str:
    """``host:port/repo:tag`` or ``host/repo@sha256:..`` -> ``host:port/repo``."""
    if "@" in name:
        return name.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def delete_manifests(pushed: Iterable[Pushed]) -> None:
    """Untag every pushed manifest (its blobs go at the next garbage collection)."""
    for p in pushed:
        host, _, repo = p.repository.partition("/")
        url = f"https://{host}/v2/{repo}/manifests/{p.digest}"
        try:
            r = requests.delete(url, headers={"Accept": ACCEPT}, auth=p.auth, verify=SYSTEM_CA_BUNDLE, timeout=30)
        except requests.RequestException as e:
            raise SandboxError(f"registry {host}: DELETE {repo}@{p.digest}: {e}") from None
        if r.status_code not in (202, 404):  # 404: a later push of the same tag replaced it, or already gone
            raise SandboxError(f"registry {host}: DELETE {repo}@{p.digest} answered HTTP {r.status_code}")


def _ctr(layout: Layout, *args: str) -> list[str]:
    return [str(node_containerd.bin_dir(layout) / "ctr"), "--address", CONTAINERD_SOCKET, *args]


EXPIRING = "containerd.io/gc.expire="  # the label of the 24-hour lease ``ctr images pull`` takes


def pull_leases(listing: str, since: datetime) -> list[str]:
    """``ctr leases ls`` -> ids of the expiring leases created at or after ``since``.

    A pull holds such a lease until it ends; one cut off (a test's signal, a dropped SSH
    connection) leaves it for a day, and it keeps the partial download and every blob it had."""
    ids = []
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3 and any(c.startswith(EXPIRING) for c in cols[2:]):
            try:
                created = datetime.fromisoformat(cols[1].replace("Z", "+00:00"))
            except ValueError:
                continue
            if created >= since:
                ids.append(cols[0])
    return ids


def doomed_names(listing: str, match: Callable[[str], bool], digests: Collection[str] = ()) -> list[str]:
    """``ctr images ls`` -> the names to remove: each that ``match``es or points at one of
    ``digests``, and then every other name of the same digest (the CRI's image id, aliases on
    other hosts: they name no repository of ours but hold the same image)."""
    records = [(cols[0], cols[2]) for cols in (line.split() for line in listing.splitlines()[1:]) if len(cols) >= 3]
    targets = set(digests) | {digest for name, digest in records if match(name)}
    return [name for name, digest in records if digest in targets]


def forget_in_containerd(layout: Layout, match: Callable[[str], bool], digests: Collection[str] = (),
                         leases_since: datetime | None = None) -> list[str]:
    """Remove, in every namespace of the node's containerd (started for it if it is stopped, as
    it is between bakes), the image records ``doomed_names`` picks, and the leases of pulls cut
    off since ``leases_since``. ``--sync`` waits for containerd's garbage collection, so the
    content and snapshots are gone on return."""
    with node_containerd.running(layout):
        return _forget_in_containerd(layout, match, digests, leases_since)


def _forget_in_containerd(layout: Layout, match: Callable[[str], bool], digests: Collection[str],
                          leases_since: datetime | None) -> list[str]:
    removed = []
    for ns in run(_ctr(layout, "namespaces", "ls", "-q"), "list containerd namespaces").split():
        doomed = doomed_names(run(_ctr(layout, "-n", ns, "images", "ls"), f"list images in {ns}"), match, digests)
        if doomed:
            run(_ctr(layout, "-n", ns, "images", "rm", "--sync", *doomed), f"remove images in {ns}")
            removed += [f"{ns}/{name}" for name in doomed]
        leases = pull_leases(run(_ctr(layout, "-n", ns, "leases", "ls"), f"list leases in {ns}"), leases_since) if leases_since else []
        if leases:
            run(_ctr(layout, "-n", ns, "leases", "rm", "--sync", *leases), f"remove leases in {ns}")
            removed += [f"{ns}/lease {lease}" for lease in leases]
    return removed


def forget_in_dockerd(match: Callable[[str], bool]) -> list[str]:
    """Remove every docker image with a repository that ``match``es (``REPO`` without the tag)."""
    if not dockerd_up():
        return []
    listing = run(["docker", "image", "ls", "--no-trunc", "--format", "{{.Repository}} {{.ID}}"], "list docker images")
    ids = sorted({i for repo, i in (line.split() for line in listing.splitlines() if line.strip()) if match(repo)})
    if ids:
        run(["docker", "image", "rm", "--force", *ids], "remove docker images")
    return ids


def discard(layout: Layout, pushed: Iterable[Pushed], leases_since: datetime | None = None) -> list[str]:
    """Remove pushed images from the registries and both runtimes, and the leases of pulls cut
    off since ``leases_since``; return what the runtimes held."""
    pushed = list(pushed)
    repositories = {p.repository for p in pushed}
    delete_manifests(pushed)

    def ours(name: str) -> bool:
        return _name_repository(name) in repositories

    removed = forget_in_containerd(layout, ours, {p.digest for p in pushed}, leases_since)
    return removed + (forget_in_dockerd(ours) if repositories else [])


def forget_hosts(layout: Layout, hosts: set[str]) -> list[str]:
    """Remove from both runtimes every image pulled from ``hosts`` (the sandbox's registries)."""
    def from_hosts(name: str) -> bool:
        return "/" in name and name.split("/", 1)[0] in hosts

    return forget_in_containerd(layout, from_hosts) + forget_in_dockerd(from_hosts)


def collect_registry_garbage(layout: Layout, ecr_password: str) -> None:
    """Free the blobs no manifest references. Offline, as distribution requires: a running
    registry's blob cache would still claim a deleted blob, so each is stopped, collected and
    started again (about a second)."""
    for root in (registries.sample_root(layout), registries.ecr_root(layout)):
        if (root / "config.yml").exists():
            stop_pidfile(root / "registry.pid")
            run([BINARY, "garbage-collect", "--delete-untagged", str(root / "config.yml")],
                f"garbage-collect the registry in {root}", timeout=600)
    registries.start(layout, ecr_password)
