"""A tag that moves between resolve and pull (re-pushed while the builder starts): the runtime
pulls the tag's new content, verify finds the resolved digest missing and fails the pool,
naming the image and both digests; nothing is left and the lock stays as it was."""

from __future__ import annotations

import uuid

import pytest

from faultkit import assert_nothing_left, step_started

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.mark.parametrize("runtime", ["containerd", "docker"])
def test_a_tag_repushed_after_resolve_fails_at_verify(sandbox, ec2, bake, proxy, pool_config, runtime):
    repo, tag = f"faults/moving-{uuid.uuid4().hex[:8]}", "v1"
    resolved = sandbox.push_image(repo, tag, size_mb=1)
    ref = f"{sandbox.info.registry}/{repo}:{tag}"
    cfg = pool_config(images=[ref], runtime=runtime)
    proxy.add("ImportKeyPair", delay=3.0, times=1)  # resolved already; the pull has not started
    run = bake("--config", str(cfg))
    run.wait_event(step_started("key-pair"))
    moved = sandbox.push_image(repo, tag, size_mb=1)  # the same tag, new content
    assert moved != resolved
    assert run.finish() == 1, run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")["message"]
    assert "the runtime does not hold the resolved digests" in fail, fail  # verify's message
    assert f"{ref} (want {resolved}, found {moved})" in fail, fail
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")
