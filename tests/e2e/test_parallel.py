"""``--parallel``: 1 bakes pools one after another, 2 overlaps them (read from the event
stream's timestamps); one pool failing while another succeeds exits 1 with the other's entry
recorded and nothing left behind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bake import tags
from bake.model.lock import LockFile
from support.cli import run_bake
from support.sandbox_bakes import pool_spans, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


def fresh(sandbox) -> str:
    """A newly pushed image: a fingerprint no AMI has, so the pool really bakes."""
    repo = f"env/parallel-{uuid.uuid4().hex[:8]}"
    sandbox.push_image(repo, "v1", size_mb=1)
    return f"{sandbox.info.registry}/{repo}:v1"


def bake_two(sandbox, d: Path, parallel: int, **second) -> tuple[object, dict]:
    cfg = write_config(d / "bake.toml", sandbox, {
        "one": {"images": [fresh(sandbox)]},
        "two": {"images": [fresh(sandbox)], "runtime": "docker", **second},
    })
    result = run_bake("build", "--config", str(cfg), "--json", "--parallel", str(parallel))
    return result, pool_spans([json.loads(line) for line in result.stdout.splitlines()])


def test_parallel_1_bakes_one_pool_after_the_other(sandbox, tmp_path):
    result, s = bake_two(sandbox, tmp_path, 1)
    assert result.returncode == 0, result.stderr
    (a0, a1), (b0, b1) = sorted(s.values())
    assert a1 <= b0, f"--parallel 1 overlapped the pools: {s}"


def test_parallel_2_overlaps_the_pools(sandbox, tmp_path):
    result, s = bake_two(sandbox, tmp_path, 2)
    assert result.returncode == 0, result.stderr
    (a0, a1), (b0, b1) = sorted(s.values())
    assert b0 < a1, f"--parallel 2 baked the pools one after another: {s}"
    pools = LockFile(tmp_path / "amis.lock.json").read().pools
    assert pools["one"].current.ami_id != pools["two"].current.ami_id


def test_one_pool_failing_does_not_lose_the_other(sandbox, ec2, tmp_path):
    # pool two's builder is never reachable (a closed port): it fails at SSH after 3 s
    result, s = bake_two(sandbox, tmp_path, 2, ssh_host="127.0.0.1:9", ssh_timeout=3)
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["pool"] for e in events if e["kind"] == "pool.fail"] == ["two"]
    assert [e["pool"] for e in events if e["kind"] == "pool.done"] == ["one"]
    pools = LockFile(tmp_path / "amis.lock.json").read().pools
    assert set(pools) == {"one"}, "the failed pool has no entry, the other one's was recorded"
    assert ec2.describe_images(ImageIds=[pools["one"].current.ami_id])["Images"][0]["State"] == "available"
    # the failed pool left no AMI (the clean_after fixture checks builders, groups, key pairs)
    run = next(e["data"]["run_id"] for e in events if e["kind"] == "pool.start" and e["pool"] == "two")
    left = ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{tags.KEY_RUN}", "Values": [run]},
                                                         {"Name": f"tag:{tags.KEY_POOL}", "Values": ["two"]}])
    assert left["Images"] == []
