"""The sandbox's data volumes (bake_sandbox/moto_volumes.py) on their own: a volume attached to an
instance is a loop device over a sparse file, linked where udev names an EBS volume; its
snapshot keeps its bytes; a volume from the snapshot is a copy; a new moto server (or
``sandbox down``) releases what an old one left."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bake_sandbox.moto_volumes import Store, device_link

pytestmark = [pytest.mark.sandbox]  # loop devices and /dev/disk/by-id are this machine's: under the sandbox's lock


def loops_over(root: Path) -> list[str]:
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if str(root) in line]


def test_a_volume_its_snapshot_a_copy_and_the_release(sandbox, tmp_path):  # sandbox: its part of the suite
    store = Store(tmp_path)
    loop = store.attach("vol-0aaa", 1, None)
    assert os.readlink(device_link("vol-0aaa")) == loop and store.volume_file("vol-0aaa").stat().st_size == 2**30
    subprocess.run(["mkfs.ext4", "-q", "-L", "probe", str(device_link("vol-0aaa"))], check=True)
    store.snapshot("vol-0aaa", "snap-0aaa")
    copy = store.attach("vol-0bbb", 1, "snap-0aaa")
    label = subprocess.run(["blkid", "-s", "LABEL", "-o", "value", copy], capture_output=True, text=True).stdout.strip()
    assert label == "probe"  # the copy holds the snapshot's filesystem
    assert os.stat(store.snapshot_file("snap-0aaa")).st_blocks * 512 < 2**30 / 4  # sparse, not 1 GiB written
    store.detach("vol-0aaa")
    assert not os.path.lexists(device_link("vol-0aaa")) and store.volume_file("vol-0aaa").exists()
    Store(tmp_path).release_stale()  # a new moto server: everything the old one left goes
    assert loops_over(tmp_path) == [] and not os.path.lexists(device_link("vol-0bbb"))
    assert list(tmp_path.rglob("*.img")) == []
