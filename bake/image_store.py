"""The kubelet's question answered from containerd's image store through ``ctr``, where no CRI
client can run: a Bottlerocket builder has no interpreter on its host and none promised in its
admin container (docs/data-volume.md "Bottlerocket"), and the CRI is gRPC over a unix socket
that only root reaches.

What the CRI answers to ``ImageStatus(ref)`` is derived from the ``k8s.io`` namespace's image
records, which is what this reads: a name is found when an image of that name exists; an image
id (``sha256:`` + the config's digest) when any image's config has that digest; the id is the
config digest of the builder's platform manifest; the repo digests are the digested names
(``repo@sha256:…``) of the same image; pinned is the ``io.cri-containerd.pinned=pinned`` label.
Three round trips per question: the listing (with ``ctr version`` and the machine), the
targets' documents, and, for indexes, the platform manifests.

The parsing is pure; ``lookup`` runs the commands.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bake.errors import BakeError
from bake.ssh import sudo

if TYPE_CHECKING:
    from bake.runtimes import Answer, Found
    from bake.ssh import Connection

PINNED = "io.cri-containerd.pinned=pinned"
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
DIGEST_LINE = "--- "  # before each document of a `ctr content get` loop
SECTION = "--- bake-image-store ---"
MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "amd64": "amd64"}


@dataclass(frozen=True)
class Record:
    """One name in the namespace: its target (manifest or index) and its labels."""

    target: str
    labels: frozenset[str]


def parse_listing(text: str) -> dict[str, Record]:
    """``ctr images ls``: REF TYPE DIGEST SIZE(2 words) PLATFORMS LABELS, a header first;
    LABELS is ``-`` or ``k=v,k=v``."""
    out: dict[str, Record] = {}
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4 or not cols[2].startswith("sha256:"):
            continue
        labels = frozenset() if cols[-1] == "-" or "=" not in cols[-1] else frozenset(cols[-1].split(","))
        out[cols[0]] = Record(cols[2], labels)
    return out


def parse_server_version(text: str) -> str:
    """The server's version in ``ctr version`` (``Server:`` then ``Version: v2.1.4``), without the v."""
    server = text.partition("Server:")[2]
    m = re.search(r"Version:\s*v?(\S+)", server)
    if not m:
        raise BakeError(f"ctr version printed no server version: {text.strip()[-200:]!r}")
    return m.group(1)


def split_documents(text: str) -> dict[str, dict]:
    """The documents a ``--- DIGEST`` / ``ctr content get DIGEST`` loop printed, by digest.
    A document that is missing or not JSON is left out: its image is then not found."""
    docs: dict[str, dict] = {}
    digest, body = None, []
    for line in [*text.splitlines(), DIGEST_LINE + "end"]:
        if line.startswith(DIGEST_LINE):
            if digest:
                try:
                    docs[digest] = json.loads("\n".join(body))
                except ValueError:
                    pass
            digest, body = line[len(DIGEST_LINE):].strip(), []
        else:
            body.append(line)
    return docs


def platform_manifest(index: dict, arch: str) -> str | None:
    """The linux/ARCH manifest's digest in an index (OCI or Docker manifest list)."""
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == arch:
            return m.get("digest")
    return None


def config_of(doc: dict) -> str | None:
    return (doc.get("config") or {}).get("digest")


def answer(records: dict[str, Record], configs: dict[str, str], refs: list[str]) -> dict[str, Found | None]:
    """What the CRI would report for each ref, from the names' records and each target's config."""
    from bake.runtimes import Found

    by_config: dict[str, list[str]] = {}
    for name, rec in records.items():
        if rec.target in configs:
            by_config.setdefault(configs[rec.target], []).append(name)

    def found(config: str) -> Found:
        names = by_config[config]
        return Found(config, tuple(sorted(n for n in names if "@" in n)),
                     any(PINNED in records[n].labels for n in names))

    out: dict[str, Found | None] = {}
    for ref in refs:
        if IMAGE_ID.match(ref):
            out[ref] = found(ref) if ref in by_config else None
        else:
            rec = records.get(ref)
            out[ref] = found(configs[rec.target]) if rec and rec.target in configs else None
    return out


def _contents(conn: Connection, ctr: str, digests: list[str]) -> dict[str, dict]:
    if not digests:
        return {}
    loop = "; ".join(f"echo {shlex.quote(DIGEST_LINE + d)}; {ctr} content get {shlex.quote(d)} 2>/dev/null; echo"
                     for d in digests)
    return split_documents(conn.run(sudo(loop), timeout=300, shown=f"ctr content get x{len(digests)}").stdout)


def lookup(conn: Connection, ctr: str, refs: list[str]) -> Answer:
    """The CRI's answer for ``refs``, read from the image store with ``ctr`` (the host's)."""
    from bake.runtimes import Answer

    script = f"{ctr} version; echo {shlex.quote(SECTION)}; uname -m; echo {shlex.quote(SECTION)}; {ctr} images ls"
    res = conn.run(sudo(script), timeout=300, shown="ctr version and images ls")
    parts = res.stdout.split(SECTION + "\n")
    if len(parts) != 3:
        raise BakeError(f"ctr version/images ls printed an unexpected answer: {res.stdout[-300:]!r}")
    version = parse_server_version(parts[0])
    arch = MACHINE_ARCH.get(parts[1].strip(), parts[1].strip())
    records = parse_listing(parts[2])
    # An image id may be any image's config: then every target is read; else only the named ones'.
    wanted = (set(records.values()) if any(IMAGE_ID.match(r) for r in refs)
              else {records[r] for r in refs if r in records})
    targets = sorted({r.target for r in wanted})
    docs = _contents(conn, ctr, targets)
    chosen = {t: platform_manifest(doc, arch) if "manifests" in doc else t for t, doc in docs.items()}
    manifests = _contents(conn, ctr, sorted({m for t, m in chosen.items() if m and m != t}))
    configs = {}
    for target, manifest in chosen.items():
        doc = docs[target] if manifest == target else manifests.get(manifest or "")
        if doc and (config := config_of(doc)):
            configs[target] = config
    return Answer("containerd", version, answer(records, configs, refs))
