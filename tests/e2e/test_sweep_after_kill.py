"""A bake killed with SIGKILL cannot clean up: `sweep` finds what it left by its tags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.cli import ROOT, run_bake
from support.sandbox_bakes import leftovers, write_config

pytestmark = pytest.mark.sandbox


def test_sweep_removes_what_a_killed_bake_left(sandbox, ec2, tmp_path, big_image):
    # A large, fresh image keeps the bake in its pull step long enough to be killed there.
    ref = big_image(150)
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"killed": {"images": [ref]}})
    before = leftovers(ec2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bake", "build", "--config", str(cfg), "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, **sandbox.env()}, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            event = json.loads(line)
            if event.get("kind") == "image" and event.get("status") == "started":
                os.killpg(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the bake never reached its pull step"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    left = leftovers(ec2)
    new = {k: sorted(set(left[k]) - set(before[k])) for k in left}
    assert len(new["instances"]) == 1 and len(new["security_groups"]) == 1 and len(new["key_pairs"]) == 1, new
    assert not (tmp_path / "amis.lock.json").exists()

    time.sleep(2)  # sweep leaves runs younger than --older-than alone: let this one age past 1s
    # Dry run by default: lists, removes nothing.
    dry = run_bake("sweep", "--older-than", "1s", "--region", "us-east-1")
    assert dry.returncode == 0, dry.stderr
    assert new["instances"][0] in dry.stdout and new["key_pairs"][0] in dry.stdout
    assert leftovers(ec2) == left

    swept = run_bake("sweep", "--older-than", "1s", "--region", "us-east-1", "--yes")
    assert swept.returncode == 0, swept.stderr
    after = leftovers(ec2)
    for kind, ids in new.items():
        assert not set(ids) & set(after[kind]), f"{kind} left after sweep: {ids}"

    again = run_bake("sweep", "--older-than", "1s", "--region", "us-east-1")
    assert again.returncode == 0
    for ids in new.values():
        for i in ids:
            assert i not in again.stdout
