"""Measure the disk a pulled image takes on containerd, per compressed byte: the unpack factor
``bake.disk`` sizes builder disks with.

A pull keeps both the compressed layers (containerd's content store) and their unpacked
snapshot, so the factor is (compressed + unpacked) / compressed. Each corpus is a real
directory of this machine packed as one gzip layer (level 6, as docker and buildkit write),
imported into a scratch namespace of the sandbox builder's containerd and measured with
``ctr snapshots usage``; then removed.

    .venv/bin/python bench/unpack_factor.py [--mb 300]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NAMESPACE = "bake-unpack-bench"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bake_sandbox import Sandbox, node_containerd  # noqa: E402

CTR: list[str] = []  # the node's ctr on the sandbox builder's containerd (main sets it)
ROOT = Path(__file__).resolve().parent.parent
CORPORA = {
    "python packages (.py, .so)": ROOT / ".venv/lib/python3.11/site-packages",
    "system libraries (/usr/lib/x86_64-linux-gnu)": Path("/usr/lib/x86_64-linux-gnu"),
    "shared data and docs (/usr/share)": Path("/usr/share"),
    "a JDK (/usr/lib/jvm)": Path("/usr/lib/jvm"),
}


def _layer(src: Path, limit: int) -> tuple[bytes, str]:
    """(gzip layer, diff id) of ``src``'s regular files, up to ``limit`` bytes of content."""
    raw = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for dirpath, _, files in os.walk(src):
            for name in sorted(files):
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                size = path.stat().st_size
                if total + size > limit:
                    continue
                tar.add(path, arcname=str(path.relative_to("/") if path.is_absolute() else path))
                total += size
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=6), "sha256:" + hashlib.sha256(data).hexdigest()


def _archive(layer: bytes, diff_id: str, out: Path, tag: str) -> None:
    def blob(tar: tarfile.TarFile, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        info = tarfile.TarInfo(f"blobs/sha256/{digest}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return "sha256:" + digest

    with tarfile.open(out, "w") as tar:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(tar, config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(tar, layer),
                        "size": len(layer)}],
        }).encode()
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(tar, manifest),
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}).encode()
        for name, data in (("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _ctr(*args: str) -> str:
    return subprocess.run([*CTR, "-n", NAMESPACE, *args], check=True, capture_output=True, text=True).stdout


SIZE = re.compile(r"\s(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)\s")
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _unpacked_bytes() -> int:
    """Sum of ``ctr snapshots usage`` (humanized: '8.0 MiB'): every snapshot of the scratch namespace."""
    total = 0
    for line in _ctr("snapshots", "usage").splitlines()[1:]:
        if m := SIZE.search(line + " "):
            total += int(float(m[1]) * UNITS[m[2]])
    return total


def measure(name: str, src: Path, limit: int) -> tuple[int, int]:
    layer, diff_id = _layer(src, limit)
    ref = f"bench.local/unpack/{abs(hash(name)) % 10**8}:v1"
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        _archive(layer, diff_id, archive, ref)
        _ctr("images", "import", str(archive))
    try:
        unpacked = _unpacked_bytes()
    finally:
        for line in _ctr("images", "ls", "-q").splitlines():
            _ctr("images", "rm", "--sync", line.strip())
    return len(layer), unpacked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300, help="content per corpus, in MB (default: %(default)s)")
    args = ap.parse_args()
    sb = Sandbox()
    CTR[:] = [str(node_containerd.bin_dir(sb.layout) / "ctr"), "--address", node_containerd.SOCKET]
    with node_containerd.running(sb.layout):  # the builder's containerd, stopped between bakes
        return table(args)


def table(args: argparse.Namespace) -> int:
    print("| corpus | compressed | unpacked | unpacked ÷ compressed | (compressed + unpacked) ÷ compressed |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, src in CORPORA.items():
        if not src.is_dir():
            continue
        compressed, unpacked = measure(name, src, args.mb * 10**6)
        factor = (compressed + unpacked) / compressed
        worst = max(worst, factor)
        print(f"| {name} | {compressed / 2**20:.0f} MiB | {unpacked / 2**20:.0f} MiB | "
              f"{unpacked / compressed:.2f} | **{factor:.2f}** |", flush=True)
    print(f"\nhighest factor: {worst:.2f}")
    subprocess.run([*CTR, "namespaces", "rm", NAMESPACE], capture_output=True)  # empty by now
    return 0


if __name__ == "__main__":
    sys.exit(main())
