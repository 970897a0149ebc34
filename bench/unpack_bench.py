"""Where a large image's pull goes on the builder: download against unpack, and whether
containerd's per-image download concurrency helps.

Each variant pulls a freshly built image (new content, nothing cached) of --layers layers
totalling --mb MB from the sandbox's TLS registry into the host's containerd (the builder's
runtime), in a namespace of its own that is removed afterwards:

- download: `ctr content fetch` (blobs only), then `ctr images pull` of the same image (the
            blobs exist: what is left is unpacking into the snapshotter);
- pull, --max-concurrent-downloads 1 / 3 / 0 (containerd's default: unlimited): whole pulls.

The sandbox's layers are uncompressed tars of random bytes, so no decompression is measured:
on EC2 gzip layers add it (containerd uses `unpigz` for parallel decompression when it is on
the builder's PATH; none is installed here).

    .venv/bin/python bench/unpack_bench.py [--mb 1024] [--layers 8]
Needs the sandbox (`python -m bake sandbox up`); about a minute for 1 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bake.runtimes import Containerd  # noqa: E402
from bake_sandbox import Sandbox, node_containerd, oci  # noqa: E402
from bake_sandbox.images import random_seed  # noqa: E402

NAMESPACE = "bake-unpack-bench"
CTR: list[str] = []  # the node's ctr on its containerd (main sets it)
MB = 1024 * 1024


def push_fresh(sb: Sandbox, mb: float, layers: int) -> str:
    ref = f"{sb.info.registry}/bench/unpack:v{time.time_ns()}"
    tag = ref.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(dir=sb.layout.images_dir, prefix="layout-") as tmp:
        oci.build_layout(tmp, tag, [int(mb * MB / layers)] * layers, seed=random_seed())
        oci.push(tmp, tag, ref)
    return ref


def ctr(*args: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([*CTR, "-n", NAMESPACE, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"ctr {' '.join(args)} failed: {res.stderr}")
    return time.perf_counter() - t0


def forget(ref: str) -> None:
    subprocess.run([*CTR, "-n", NAMESPACE, "images", "rm", "--sync", ref], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    sb = Sandbox()
    if not sb.is_up():
        raise SystemExit("the sandbox is not up: python -m bake sandbox up")
    sb.layout.images_dir.mkdir(parents=True, exist_ok=True)
    CTR[:] = [str(node_containerd.bin_dir(sb.layout) / "ctr"), "--address", node_containerd.SOCKET]
    with node_containerd.running(sb.layout):  # stopped between bakes, as on an EKS AL2023 AMI
        rows(sb, args)


def rows(sb: Sandbox, args: argparse.Namespace) -> None:
    hosts = ("--hosts-dir", Containerd.hosts_dir)
    print(f"one image of {args.layers} uncompressed layers, {args.mb:g} MB in all, fresh content per row")
    print("| variant | seconds | MB/s |")
    print("|---|---|---|")
    ref = push_fresh(sb, args.mb, args.layers)
    try:
        fetch = ctr("content", "fetch", *hosts, ref)
        unpack = ctr("images", "pull", *hosts, ref)
        print(f"| download only (`ctr content fetch`) | {fetch:.2f} | {args.mb / fetch:.0f} |")
        print(f"| unpack only (`ctr images pull` after the fetch) | {unpack:.2f} | {args.mb / unpack:.0f} |")
    finally:
        forget(ref)
    for limit in ("1", "3", "0"):
        ref = push_fresh(sb, args.mb, args.layers)
        try:
            took = ctr("images", "pull", *hosts, "--max-concurrent-downloads", limit, ref)
            label = "0 (default: unlimited)" if limit == "0" else limit
            print(f"| whole pull, --max-concurrent-downloads {label} | {took:.2f} | {args.mb / took:.0f} |")
        finally:
            forget(ref)


if __name__ == "__main__":
    main()
