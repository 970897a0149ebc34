"""`python -m bake plan --check` through the CLI against the sandbox: 0 when every pool's lock
entry is current (skip or pinned), 4 when any pool would bake or reuse, naming the pool and why;
1 and 2 keep their meanings. Each case starts from a real bake in the sandbox."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from bake.model.lock import LockFile

from support.cli import run_bake
from support.sandbox_bakes import write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


class Pool:
    """One pool of its own (its own image repository, optionally its own SSM parameter), baked."""

    def __init__(self, sandbox, tmp_path: Path, **extra):
        self.sandbox = sandbox
        self.name = f"check{secrets.token_hex(3)}"
        self.repo = f"env/{self.name}"
        self.old_digest = sandbox.push_image(self.repo, "v1", size_mb=1)
        self.ref = f"{sandbox.info.registry}/{self.repo}:v1"
        self.config = write_config(tmp_path / "bake.toml", sandbox, {self.name: {"images": [self.ref], **extra}})
        self.lock = tmp_path / "amis.lock.json"
        self.bake()

    def bake(self) -> None:
        r = run_bake("build", "--config", str(self.config))
        assert r.returncode == 0, r.stderr

    def check(self, *extra: str):  # noqa: ANN201
        return run_bake("plan", "--check", "--config", str(self.config), *extra)

    def current(self):  # noqa: ANN201
        return LockFile(self.lock).read().pools[self.name].current


def test_current_lock_exits_0(sandbox, tmp_path):
    pool = Pool(sandbox, tmp_path)
    before = pool.lock.read_bytes()
    r = pool.check()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pool {pool.name}: SKIP (up to date: {pool.current().ami_id} has this fingerprint)" in r.stdout
    assert "changed" not in r.stdout
    assert "check: every pool's lock entry is current (skip or pinned)" in r.stdout
    doc = json.loads(pool.check("--json").stdout)
    assert doc["current"] is True and doc["pools"][0]["changes"] == []
    assert pool.lock.read_bytes() == before, "a check never writes the lock"


def test_moved_tag_exits_4_naming_the_image_and_both_digests(sandbox, tmp_path):
    pool = Pool(sandbox, tmp_path)
    before = pool.lock.read_bytes()
    new_digest = sandbox.push_image(pool.repo, "v1", size_mb=1)  # the same tag, new content
    assert new_digest != pool.old_digest
    r = pool.check()
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"pool {pool.name}: BAKE (base AMI, images or recipe changed)" in r.stdout
    assert f"changed      image {pool.ref}: tag moved, {pool.old_digest} -> {new_digest}" in r.stdout
    assert f"check: 1 pool(s) not current: {pool.name} (bake)" in r.stdout
    assert "new pull request" in r.stdout
    doc = json.loads(pool.check("--json").stdout)
    assert doc["current"] is False and doc["pools"][0]["action"] == "bake"
    assert doc["pools"][0]["changes"] == [f"image {pool.ref}: tag moved, {pool.old_digest} -> {new_digest}"]
    assert pool.lock.read_bytes() == before, "a check never writes the lock"
    # plain `plan` (no --check) shows the same and still exits 0: only --check is a gate
    r = run_bake("plan", "--config", str(pool.config))
    assert r.returncode == 0 and f"tag moved, {pool.old_digest} -> {new_digest}" in r.stdout


def test_new_base_ami_from_the_ssm_parameter_exits_4(sandbox, tmp_path):
    ssm, ec2 = sandbox.client("ssm"), sandbox.client("ec2")
    parameter = f"/bake-tests/{secrets.token_hex(4)}/image_id"  # its own: others read the sandbox's
    old = sandbox.info.base_ami
    ssm.put_parameter(Name=parameter, Value=old, Type="String")
    pool = Pool(sandbox, tmp_path, base_ami=f"ssm:{parameter}")
    assert pool.current().base_ami == old
    new = next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]
               if i["ImageId"] != old and i.get("State") == "available")
    ssm.put_parameter(Name=parameter, Value=new, Type="String", Overwrite=True)  # "AWS published a new AMI"
    try:
        r = pool.check()
    finally:
        ssm.delete_parameter(Name=parameter)
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"changed      base AMI {old} -> {new} (from ssm:{parameter})" in r.stdout
    assert "tag moved" not in r.stdout
    assert f"check: 1 pool(s) not current: {pool.name} (bake)" in r.stdout


def test_pinned_pool_is_current_until_its_images_change(sandbox, tmp_path):
    pool = Pool(sandbox, tmp_path)
    first = pool.current().ami_id
    second_digest = sandbox.push_image(pool.repo, "v1", size_mb=1)
    pool.bake()
    assert pool.current().ami_id != first
    r = run_bake("rollback", pool.name, "--config", str(pool.config))
    assert r.returncode == 0, r.stderr
    r = pool.check()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pool {pool.name}: PINNED (pinned to {first} by rollback" in r.stdout
    assert "check: every pool's lock entry is current (skip or pinned)" in r.stdout
    # a new image lapses the pin: now a bake is due, from the rolled-back entry's digest
    third_digest = sandbox.push_image(pool.repo, "v1", size_mb=1)
    r = pool.check()
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"the pin on {first} lapses" in r.stdout
    assert f"image {pool.ref}: tag moved, {pool.old_digest} -> {third_digest}" in r.stdout
    assert second_digest not in r.stdout.split("changed", 1)[1].split("\n", 1)[0]


def test_lost_lock_found_by_fingerprint_exits_4_as_a_reuse(sandbox, tmp_path):
    pool = Pool(sandbox, tmp_path)
    ami = pool.current().ami_id
    lost = tmp_path / "lost" / "amis.lock.json"
    lost.parent.mkdir()
    r = pool.check("--lock", str(lost))
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"pool {pool.name}: REUSE" in r.stdout
    assert (f"changed      no lock entry for this pool; {ami} already has this fingerprint "
            "(its bake:fingerprint tag): `python -m bake build` records it, launching nothing") in r.stdout
    assert f"check: 1 pool(s) not current: {pool.name} (reuse)" in r.stdout
    assert not lost.exists(), "a check never writes the lock"


def test_failures_keep_exit_1_and_2(sandbox, tmp_path):
    missing = f"{sandbox.info.registry}/env/no-such-image-{secrets.token_hex(3)}:v1"
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"gone": {"images": [missing]}})
    r = run_bake("plan", "--check", "--config", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "check:" not in r.stdout
    cfg.write_text(cfg.read_text().replace("instance_type", "instance_typo"))
    r = run_bake("plan", "--check", "--config", str(cfg))
    assert r.returncode == 2 and "unknown key 'instance_typo'" in r.stderr
