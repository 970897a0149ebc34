"""What makes a real rebake, end to end: the base AMI's SSM parameter republished; the lock's
AMI deregistered; a pin that lapses when the images change (and `plan` shows "pinned" before)."""

from __future__ import annotations

import json
import uuid

import pytest

from bake.model.lock import LockFile
from support.cli import run_bake
from support.sandbox_bakes import write_config
from support.terraform import bake_ami

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


def plan_of(cfg, pool: str) -> dict:
    r = run_bake("plan", "--config", str(cfg), "--pool", pool, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["pools"][0]


@pytest.fixture(scope="module")
def baked(sandbox, tmp_path_factory):
    """Three pools baked once: ``ssm`` on a parameter of its own (the shared one stays), ``gone``
    and ``pinned`` on the sandbox's."""
    d = tmp_path_factory.mktemp("triggers")
    param = f"/bake-test/{uuid.uuid4().hex[:8]}/image_id"
    sandbox.client("ssm").put_parameter(Name=param, Value=sandbox.info.base_ami, Type="String")
    repo = f"env/triggers-{uuid.uuid4().hex[:8]}"
    sandbox.push_image(repo, "v1", size_mb=1)
    image = f"{sandbox.info.registry}/{repo}:v1"
    cfg = write_config(d / "bake.toml", sandbox, {
        "ssm": {"base_ami": f"ssm:{param}", "images": [image], "runtime": "docker"},
        "gone": {"images": [image], "runtime": "docker"},
        "pinned": {"images": [image]},
    })
    r = run_bake("build", "--config", str(cfg), "--parallel", "3")
    assert r.returncode == 0, r.stderr
    return d, cfg, param, repo


def current(d, pool: str):
    return LockFile(d / "amis.lock.json").read().pools[pool]


def test_a_republished_ssm_parameter_rebakes(sandbox, ec2, baked):
    d, cfg, param, _ = baked
    first = current(d, "ssm").current
    newer = bake_ami(sandbox, f"eks-node-newer-{uuid.uuid4().hex[:6]}")  # AWS publishes a new EKS AMI
    sandbox.client("ssm").put_parameter(Name=param, Value=newer, Type="String", Overwrite=True)
    plan = plan_of(cfg, "ssm")
    assert (plan["action"], plan["base_ami"]) == ("bake", newer)
    r = run_bake("build", "--config", str(cfg), "--pool", "ssm")
    assert r.returncode == 0, r.stderr
    pool = current(d, "ssm")
    assert pool.current.base_ami == newer and pool.current.ami_id != first.ami_id
    assert [h.ami_id for h in pool.history] == [first.ami_id]


def test_the_locks_ami_deregistered_rebakes(sandbox, ec2, baked):
    d, cfg, _, _ = baked
    first = current(d, "gone").current
    ec2.deregister_image(ImageId=first.ami_id)
    plan = plan_of(cfg, "gone")
    assert plan["action"] == "bake" and f"{first.ami_id} is no longer available" in plan["reason"]
    r = run_bake("build", "--config", str(cfg), "--pool", "gone")
    assert r.returncode == 0, r.stderr
    again = current(d, "gone").current
    assert again.ami_id != first.ami_id and again.fingerprint == first.fingerprint


def test_a_pin_holds_in_plan_then_lapses_when_the_images_change(sandbox, baked):
    d, cfg, _, repo = baked
    first = current(d, "pinned").current
    sandbox.push_image(repo, "v1", size_mb=1)  # the image moves: a rebake ...
    r = run_bake("build", "--config", str(cfg), "--pool", "pinned")
    assert r.returncode == 0, r.stderr
    second = current(d, "pinned").current
    r = run_bake("rollback", "pinned", "--config", str(cfg))  # ... rolled back: pinned to the first
    assert r.returncode == 0, r.stderr
    plan = run_bake("plan", "--config", str(cfg), "--pool", "pinned")
    assert plan.returncode == 0 and f"pool pinned: PINNED (pinned to {first.ami_id}" in plan.stdout, plan.stdout
    sandbox.push_image(repo, "v1", size_mb=1)  # the images change again: the pin lapses
    plan = plan_of(cfg, "pinned")
    assert plan["action"] == "bake" and f"the pin on {first.ami_id} lapses" in plan["reason"]
    r = run_bake("build", "--config", str(cfg), "--pool", "pinned")
    assert r.returncode == 0, r.stderr
    pool = current(d, "pinned")
    assert pool.pinned is None and pool.current.ami_id not in (first.ami_id, second.ami_id)
