"""First start, in the sandbox: the bake measures what the images occupy on the builder's disk
(checked against du of the runtime's root, before and after), records it with the AMI's
snapshots, and bakes in the prewarm unit, whose script reads exactly the images' files from the
real containerd. The containerd cache is in the node's shape: unpacked layers, no compressed
copy (nodeadm's ``discard_unpacked_layers``), so it is about the images' size, not twice it."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from bake import prewarm, tags
from bake.model.lock import LockFile
from bake_sandbox import Sandbox, node_containerd

from support.cli import run_bake
from support.sandbox_bakes import in_builder, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]

CONTAINERD_ROOT = "/var/lib/containerd"  # as the builder sees it: the node's disk, node_containerd.root_dir
DOCKER_ROOT = "/var/lib/docker"
MB = 1024 * 1024
# du of the whole root also sees containerd's metadata database grow and the views' empty
# directories come and go: a few hundred KiB, against images of 12 MiB here.
SLACK = 512 * 1024


def du(path: str) -> int:
    # du exits 1 when an entry vanishes during its walk (containerd removing a view or a
    # collected blob); it still prints the total of the rest. Only no total is a failure.
    r = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True)
    assert r.stdout.split(), f"du {path} printed no total (exit {r.returncode}): {r.stderr[-500:]}"
    return int(r.stdout.split()[0])


def fresh_images(sandbox, sizes_mb: list[int]) -> list[str]:
    """Newly pushed images of random content: nothing of them is on the disk yet."""
    run = secrets.token_hex(4)
    refs = []
    for i, size in enumerate(sizes_mb):
        sandbox.push_image(f"env/first-start-{i}", run, size_mb=size)
        refs.append(f"{sandbox.info.registry}/env/first-start-{i}:{run}")
    return refs


def host_path(sandbox, path: str) -> str:
    """Where a path of the builder's /var/lib/containerd is on this machine."""
    if path.startswith(CONTAINERD_ROOT):
        return str(node_containerd.root_dir(sandbox.layout)) + path[len(CONTAINERD_ROOT):]
    return path


def bake_measured(sandbox, tmp_path: Path, runtime: str, root: str, sizes_mb: list[int]):
    images = fresh_images(sandbox, sizes_mb)
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"cpu": {"images": images, "runtime": runtime}})
    subprocess.run(["sync"], check=True)
    before = du(host_path(sandbox, root))
    result = run_bake("build", "--config", str(cfg))
    subprocess.run(["sync"], check=True)
    gained = du(host_path(sandbox, root)) - before
    assert result.returncode == 0, result.stderr
    entry = LockFile(tmp_path / "amis.lock.json").read().pools["cpu"].current
    assert entry.cache_bytes is not None, result.stderr[-3000:]
    return cfg, images, entry, gained


@pytest.fixture(scope="module")
def containerd_bake(sandbox, tmp_path_factory):
    return bake_measured(sandbox, tmp_path_factory.mktemp("first-start"), "containerd", CONTAINERD_ROOT, [8, 4])


def test_cache_bytes_is_what_the_builders_disk_gained(sandbox, ec2, containerd_bake):
    cfg, images, entry, gained = containerd_bake
    # unpacked layers only, as a node keeps them: the layers' size, not twice it (the compressed
    # copies left once unpacked; before that, gained was above 2 x 12 MiB here)
    assert 12 * MB < gained < 1.1 * 12 * MB + SLACK, gained
    assert abs(entry.cache_bytes - gained) <= SLACK, (entry.cache_bytes, gained)
    assert entry.cache_bytes <= 1.1 * entry.compressed_bytes
    image = ec2.describe_images(ImageIds=[entry.ami_id])["Images"][0]
    assert tags.from_aws(image["Tags"])[tags.KEY_CACHE_BYTES] == str(entry.cache_bytes)
    assert entry.snapshot_ids == [b["Ebs"]["SnapshotId"] for b in image["BlockDeviceMappings"] if "Ebs" in b]
    assert entry.snapshot_ids


def test_plan_shows_compressed_and_cache_bytes(sandbox, containerd_bake):
    cfg, images, entry, gained = containerd_bake
    # the layers as pushed: one tar of N MiB of random bytes each (plus its tar headers)
    assert 12 * MB < entry.compressed_bytes < 12 * MB + 32 * 1024
    result = run_bake("plan", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    pool = json.loads(result.stdout)["pools"][0]
    assert pool["action"] == "skip"
    assert pool["cache_bytes"] == entry.cache_bytes
    assert pool["compressed_bytes"] == entry.compressed_bytes
    sizes = [i["compressed_bytes"] for i in pool["images"]]
    assert 8 * MB < sizes[0] < 8 * MB + 16 * 1024 and 4 * MB < sizes[1] < 4 * MB + 16 * 1024
    assert pool["first_read"]["cache_bytes"] == entry.cache_bytes and pool["first_read"]["lazy"]
    text = run_bake("plan", "--config", str(cfg))
    assert re.search(r"compressed\s+12\.\d MiB", text.stdout), text.stdout
    # no rollout strategy in this config: plan says the cache is read lazily from S3
    assert "warning: no volume_initialization_rate and no fast_snapshot_restore" in text.stdout


def _upper(sandbox, path: str) -> Path:
    return Path(sandbox.info.overlay_upper) / path.lstrip("/")


def test_prewarm_unit_and_script_survive_the_scrub(sandbox, containerd_bake):
    assert _upper(sandbox, prewarm.SCRIPT).read_text() == prewarm.packaged("prewarm.sh")
    assert _upper(sandbox, prewarm.UNIT).read_text() == prewarm.packaged(prewarm.UNIT_NAME)
    assert os.readlink(_upper(sandbox, prewarm.WANTS)) == prewarm.UNIT
    listing = _upper(sandbox, prewarm.LIST).read_text().splitlines()
    assert listing and all(line[:2] in ("f ", "d ") for line in listing)


def _listed_bytes(listing: list[str]) -> tuple[int, int]:
    """Files and bytes the list names, counted here in Python (the script's answer must match)."""
    files = size = 0
    for line in listing:
        kind, path = line.split(" ", 1)
        path = host_path(Sandbox(), path)
        paths = [Path(path)] if kind == "f" else [p for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink()]
        files += len(paths)
        size += sum(p.stat().st_size for p in paths)
    return files, size


def test_prewarm_reads_exactly_the_baked_images(sandbox, containerd_bake):
    cfg, images, entry, gained = containerd_bake
    listing_path = _upper(sandbox, prewarm.LIST)
    listing = listing_path.read_text().splitlines()
    # Run the baked script as the node would, in the builder's view, where /var/lib/containerd is the node's disk.
    out = in_builder(sandbox, f"PREWARM_LIST={prewarm.LIST} sh {prewarm.SCRIPT} 2>&1")
    m = re.search(r"read (\d+) bytes in (\d+) files in [\d.]+ s", out)
    assert m, out
    files, size = _listed_bytes(listing)
    assert (int(m.group(2)), int(m.group(1))) == (files, size)
    # every baked image's unpacked files (12 MiB of payload), little else (manifests, configs:
    # a few KiB; the compressed layers left as on a node)
    assert 12 * MB <= size <= 12 * MB + 64 * 1024
    assert "missing" not in out


def test_docker_cache_bytes_is_what_the_builders_disk_gained(sandbox, ec2, tmp_path):
    cfg, images, entry, gained = bake_measured(sandbox, tmp_path, "docker", DOCKER_ROOT, [6])
    assert gained > 6 * MB
    assert abs(entry.cache_bytes - gained) <= SLACK, (entry.cache_bytes, gained)
