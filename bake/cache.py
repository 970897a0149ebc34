"""What the baked images occupy on the builder's disk: exactly their files, found and measured.

A node launched from the AMI first reads these files from a volume that EBS fills lazily from
S3, so their size is the size of the first-read problem (see docs/first-start.md). Two uses:
``cache_bytes`` in the lock entry and on the AMI (``du`` of the files, each inode counted once),
and the list of paths the boot-time prewarm reads (bake/prewarm/).

containerd: walking the content store's garbage-collection labels from each image's digest
(index -> manifest -> config and layers) gives exactly the blobs this image holds; the config
blob's ``containerd.io/gc.ref.snapshot.<snapshotter>`` label names its top unpacked snapshot.
containerd does not print a snapshot's directory, so a read-only view of the top snapshot is
made and its mounts (``lowerdir=`` or a bind source) name the directory of every layer; the view
is removed at once. Docker (overlay2): ``docker image inspect`` names the layer directories
(``GraphDriver.Data``); Docker keeps no compressed copy.

Pure parsing is kept apart from the remote commands so it can be tested on recorded output.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bake.errors import BakeError
from bake.model.images import ResolvedImage
from bake.ssh import Connection, sudo

NAMESPACE = "k8s.io"
CONTENT_DIR = "io.containerd.content.v1.content/blobs"
SNAPSHOTTER_DIR = re.compile(r"^(?P<root>/.+)/io\.containerd\.snapshotter\.v1\.[^/]+/snapshots/\d+/fs$")
GC_CONTENT = "containerd.io/gc.ref.content."
GC_SNAPSHOT = "containerd.io/gc.ref.snapshot."
GC_LAYER = "containerd.io/gc.ref.content.l."
VIEW_MARK = "=== view "


class CacheError(BakeError):
    """The runtime's answer did not let us find the images' files."""


@dataclass(frozen=True)
class CachePaths:
    """The images' files on the builder: content blobs and unpacked layer directories."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]

    @property
    def measured(self) -> tuple[str, ...]:
        """What ``du`` counts: the blobs and each layer's directory (its ``fs`` or ``diff`` parent)."""
        return self.files + tuple(sorted({posixpath.dirname(d) for d in self.dirs}))

    def listing(self) -> str:
        """The prewarm list: one path a line, files first ("f PATH"), then directories ("d PATH")."""
        return "".join(f"f {p}\n" for p in self.files) + "".join(f"d {p}\n" for p in self.dirs)


# -- containerd: pure parsing -------------------------------------------------------------------

def parse_content_labels(text: str) -> dict[str, dict[str, str]]:
    """``ctr content ls`` -> digest -> labels. The first column is the digest and the last the
    comma-separated labels ("-" for none); the columns between hold spaces ("1 second")."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 2 or not cols[0].startswith("sha256:"):
            continue
        labels: dict[str, str] = {}
        if cols[-1] != "-":
            for pair in cols[-1].split(","):
                key, sep, value = pair.partition("=")
                if sep:
                    labels[key] = value
        out[cols[0]] = labels
    return out


def walk_content(roots: Iterable[str], labels: dict[str, dict[str, str]]) -> tuple[list[str], dict[str, str]]:
    """The blobs reachable from ``roots`` that are present, and the top snapshots found on the
    way (chain id -> snapshotter). A blob that is absent (another platform's manifest) is skipped."""
    seen: list[str] = []
    tops: dict[str, str] = {}
    todo = list(roots)
    while todo:
        digest = todo.pop()
        if digest in seen or digest not in labels:
            continue
        seen.append(digest)
        for key, value in labels[digest].items():
            if key.startswith(GC_CONTENT):
                todo.append(value)
            elif key.startswith(GC_SNAPSHOT):
                tops[value] = key[len(GC_SNAPSHOT):]
    return sorted(seen), tops


@dataclass(frozen=True)
class LayerReferences:
    """The compressed layer blobs reachable from some images, and the labels naming them."""

    layers: list[str]  # present layer blobs
    labels: dict[str, list[str]]  # manifest digest -> its ``gc.ref.content.l.N`` label keys


def layer_references(roots: Iterable[str], labels: dict[str, dict[str, str]]) -> LayerReferences:
    """The layers (``containerd.io/gc.ref.content.l.N``) of the manifests reachable from
    ``roots``, only of images that were unpacked (their config names a snapshot): a node's
    containerd with ``discard_unpacked_layers`` keeps exactly what is left without them."""
    blobs, tops = walk_content(roots, labels)
    if not tops:
        return LayerReferences([], {})
    layers: set[str] = set()
    keys: dict[str, list[str]] = {}
    for digest in blobs:
        for key, value in labels[digest].items():
            if key.startswith(GC_LAYER):
                keys.setdefault(digest, []).append(key)
                if value in labels:
                    layers.add(value)
    return LayerReferences(sorted(layers), {d: sorted(k) for d, k in keys.items()})


def parse_view_mounts(text: str) -> list[str]:
    """``ctr snapshots view --mounts`` JSON -> the layer directories, top first."""
    try:
        mounts = json.loads(text)
    except json.JSONDecodeError as e:
        raise CacheError(f"ctr snapshots view printed no mounts JSON ({e}): {text[:200]!r}") from None
    dirs: list[str] = []
    for m in mounts or []:
        if m.get("Type") == "bind":
            dirs.append(m["Source"])
            continue
        for opt in m.get("Options") or []:
            if opt.startswith("lowerdir="):
                dirs += opt[len("lowerdir="):].split(":")
    return dirs


def split_views(text: str) -> dict[str, str]:
    """The output of the batched view script: chain id -> its mounts JSON."""
    out: dict[str, str] = {}
    key = None
    for line in text.splitlines(keepends=True):
        if line.startswith(VIEW_MARK):
            key = line[len(VIEW_MARK):].strip()
            out[key] = ""
        elif key is not None:
            out[key] += line
    return out


def content_root(dirs: Iterable[str]) -> str:
    """containerd's root, from a snapshot directory's path (the default root is not assumed)."""
    for d in dirs:
        m = SNAPSHOTTER_DIR.match(d)
        if m:
            return m.group("root")
    raise CacheError(f"cannot tell containerd's root from the snapshot directories {list(dirs)[:3]}")


def blob_path(root: str, digest: str) -> str:
    algo, _, hexa = digest.partition(":")
    return f"{root}/{CONTENT_DIR}/{algo}/{hexa}"


# -- remote ---------------------------------------------------------------------------------------

def view_script(tops: dict[str, str], namespace: str = NAMESPACE, ctr_cmd: str = "ctr") -> str:
    """One script for every top snapshot: make a view of each (all at once: each ``ctr`` costs
    a process start and a connection to containerd), print each one's mounts in order, and
    remove the views on exit, whatever happened. A view has no lease: containerd's garbage
    collector may remove one first (seen with nine images pulled just before); either way it
    is gone."""
    keys = {chain: f"eks-image-bake-view-{secrets.token_hex(6)}" for chain in sorted(tops)}

    def ctr(snapshotter: str) -> str:
        return f"{ctr_cmd} -n {namespace} snapshots --snapshotter {shlex.quote(snapshotter)}"

    removals = []
    for snapshotter in sorted(set(tops.values())):
        mine = " ".join(shlex.quote(keys[c]) for c in sorted(tops) if tops[c] == snapshotter)
        # One rm for all; if one of them is gone already (rm stops at it), each on its own.
        removals.append(f"{ctr(snapshotter)} rm {mine} 2>/dev/null || "
                        f"for k in {mine}; do {ctr(snapshotter)} rm \"$k\" 2>/dev/null || true; done")
    lines = ["set -e", 'out=$(mktemp -d)', "trap " + shlex.quote("; ".join([*removals, 'rm -rf "$out"'])) + " EXIT"]
    for i, (chain, key) in enumerate(keys.items()):
        lines.append(f'{ctr(tops[chain])} view --mounts {shlex.quote(key)} {shlex.quote(chain)} > "$out/{i}" & p{i}=$!')
    for i, chain in enumerate(keys):
        lines.append(f'wait $p{i}; echo {shlex.quote(VIEW_MARK + chain)}; cat "$out/{i}"')
    return "\n".join(lines)


def containerd_paths(conn: Connection, images: Sequence[ResolvedImage], ctr_cmd: str = "ctr",
                     namespace: str = NAMESPACE) -> CachePaths:
    listing = conn.run(f"sudo -n {ctr_cmd} -n {namespace} content ls", timeout=300).stdout
    blobs, tops = walk_content([img.digest for img in images], parse_content_labels(listing))
    missing = [img.ref.original for img in images if img.digest not in blobs]
    if missing:
        raise CacheError(f"containerd's content store does not hold {', '.join(missing)}")
    if not tops:
        raise CacheError("no unpacked snapshot is recorded for these images (were they unpacked?)")
    views = split_views(conn.run(sudo(view_script(tops, namespace, ctr_cmd)), timeout=300, shown="ctr snapshots view").stdout)
    dirs: list[str] = []
    for chain in sorted(tops):
        for d in parse_view_mounts(views.get(chain, "")):
            if d not in dirs:
                dirs.append(d)
    root = content_root(dirs)
    return CachePaths(files=tuple(blob_path(root, b) for b in blobs), dirs=tuple(dirs))


def docker_layer_dirs(graph_driver: dict) -> list[str]:
    """``docker image inspect``'s GraphDriver -> the layer directories (overlay2's ``diff``)."""
    data = graph_driver.get("Data") or {}
    dirs = [d for d in (data.get("UpperDir") or "").split(":") if d]
    dirs += [d for d in (data.get("LowerDir") or "").split(":") if d]
    if not dirs:
        raise CacheError(f"docker's storage driver {graph_driver.get('Name')!r} names no layer directories")
    return dirs


def docker_paths(conn: Connection, images: Sequence[ResolvedImage]) -> CachePaths:
    # One inspect for all images (a line each, in order): a remote command costs a round trip
    # and a sudo, about 30 ms on the sandbox, so one per image added 0.2 s to an 8-image pool.
    refs = " ".join(shlex.quote(img.ref.original) for img in images)
    out = conn.run(f"sudo -n docker image inspect --format '{{{{json .GraphDriver}}}}' {refs}", timeout=120,
                   shown=f"docker image inspect of {len(images)} image(s)").stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if len(lines) != len(images):
        raise CacheError(f"docker image inspect printed {len(lines)} storage description(s) for {len(images)} image(s)")
    dirs: list[str] = []
    for line in lines:
        for d in docker_layer_dirs(json.loads(line)):
            if d not in dirs:
                dirs.append(d)
    return CachePaths(files=(), dirs=tuple(dirs))


def parse_du_total(text: str) -> int:
    """The last line of ``du -c``: "BYTES<TAB>total"."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[-1].rstrip().endswith("total"):
        raise CacheError(f"du printed no total: {text[-200:]!r}")
    return int(lines[-1].split()[0])


def measure(conn: Connection, paths: CachePaths) -> int:
    """Bytes on disk (``du``: allocated blocks, each inode once) of the images' files."""
    listing = "".join(p + "\0" for p in paths.measured)
    out = conn.run(sudo("exec du -s -c -B1 --files0-from=-"), stdin=listing, timeout=600, shown="du of the images' files")
    return parse_du_total(out.stdout)
