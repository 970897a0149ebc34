"""What `plan` asks EC2, counted by the fault proxy in front of the sandbox's moto: a skip and
a pin ask no DescribeImages by fingerprint tag; a changed fingerprint asks exactly one (an AMI
with it may exist: a killed run's, a lost lock's), and so does a lost lock, which it finds.
(tests/unit/test_decision.py holds the pure decision; this is the command end to end.)"""

from __future__ import annotations

import shutil

import pytest

from support.cli import run_bake

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(300)]

FINGERPRINT_TAG = "tag:bake:fingerprint"


def by_fingerprint(proxy) -> int:  # noqa: ANN001
    return sum(FINGERPRINT_TAG in c.params.values() for c in proxy.calls_to("DescribeImages"))


def test_plan_asks_by_fingerprint_tag_only_when_the_decision_needs_it(sandbox, proxy, bake, pool_config, tmp_path):
    image = pool_config().read_text().split('images = ["', 1)[1].split('"', 1)[0]
    cfg = tmp_path / "bake.toml"
    lock = tmp_path / "amis.lock.json"
    lock.unlink()  # a new pool: not the fault kit's sample lock
    env = {**sandbox.env(), "AWS_ENDPOINT_URL": proxy.url}

    def plan(*args: str) -> str:
        proxy.clear()
        r = run_bake("plan", "--config", str(cfg), *args, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert proxy.calls_to("DescribeImages"), "the plan went through the proxy"
        return r.stdout

    out = plan()
    assert "pool cpu: BAKE" in out and by_fingerprint(proxy) == 1, (out, by_fingerprint(proxy))  # new pool
    assert bake("--config", str(cfg)).finish() == 0
    out = plan()
    assert "pool cpu: SKIP" in out and by_fingerprint(proxy) == 0, out

    repo, _, tag = image.split("/", 1)[1].rpartition(":")
    sandbox.push_image(repo, tag, size_mb=1)  # the tag moves: a new fingerprint
    out = plan()
    assert "pool cpu: BAKE" in out and by_fingerprint(proxy) == 1, out
    assert bake("--config", str(cfg)).finish() == 0

    r = run_bake("rollback", "cpu", "--config", str(cfg), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = plan()
    assert "pool cpu: PINNED" in out and by_fingerprint(proxy) == 0, out

    shutil.move(lock, tmp_path / "kept.json")  # the lock is lost: the AMI is found by its tag
    out = plan()
    assert "pool cpu: REUSE" in out and by_fingerprint(proxy) == 1, out
