"""Two bakes at once. The same pool: the second fails at once naming the holder, or with
--wait waits and then finds the pool done (no second builder); a signal while waiting stops
it promptly. Two different pools in one lock file: both succeed, neither entry lost."""

from __future__ import annotations

import signal
import time

import pytest

from bake.model.lock import LockFile
from support.sandbox_bakes import event_time, fresh_image, pool_spans, write_config
from faultkit import LOCK_BEFORE, assert_nothing_left, step_started

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]


def test_same_pool_second_bake_fails_clearly_or_waits(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config()
    proxy.add("ImportKeyPair", delay=4.0, times=1)  # the first bake holds the pool a while
    first = bake("--config", str(cfg))
    first.wait_event(step_started("key-pair"))
    second = bake("--config", str(cfg))
    assert second.finish() == 1, second.stderr
    fail = next(e for e in second.events if e.get("kind") == "pool.fail")["message"]
    assert "another bake of pool cpu is running" in fail and "--wait" in fail
    waiter = bake("--config", str(cfg), "--wait", "90")
    assert first.finish() == 0, first.stderr
    assert waiter.finish() == 0, waiter.stderr
    skip = next(e for e in waiter.events if e.get("kind") == "pool.skip")
    done = next(e for e in first.events if e.get("kind") == "pool.done")
    assert event_time(skip) >= event_time(done), "the waiting bake decided before the first one recorded"
    assert len(proxy.calls_to("RunInstances")) == 1, "the waiting bake launched a second builder"
    pools = LockFile(cfg.parent / "amis.lock.json").read().pools
    assert pools["cpu"].current and pools["other"].current, "an entry was lost"
    assert_nothing_left(ec2, first, succeeded=True)


@pytest.mark.slow
def test_signal_while_waiting_for_the_pool_stops_promptly(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config()
    proxy.add("ImportKeyPair", delay=12.0, times=1)
    first = bake("--config", str(cfg))
    first.wait_event(step_started("key-pair"))
    waiter = bake("--config", str(cfg), "--wait", "90")
    time.sleep(1.5)  # planned, now blocked on the pool's bake lock
    sent = time.monotonic()
    waiter.send(signal.SIGTERM)
    assert waiter.finish() == 143, waiter.stderr
    assert time.monotonic() - sent < 5, "a signal must not wait for the other bake to finish"
    first.send(signal.SIGINT)
    assert first.finish() == 130, first.stderr
    assert_nothing_left(ec2, first, cfg.parent / "amis.lock.json")


def test_two_pools_at_once_both_succeed(sandbox, ec2, bake, proxy, tmp_path):
    cfg = write_config(tmp_path / "bake.toml", sandbox, {
        "alpha": {"images": [fresh_image(sandbox)]},
        "beta": {"images": [fresh_image(sandbox)], "runtime": "docker"},
    })
    (tmp_path / "amis.lock.json").write_text(LOCK_BEFORE)
    proxy.add("ImportKeyPair", delay=1.0)  # both hold their pool's bake lock at the same time
    a = bake("--config", str(cfg), "--pool", "alpha")
    b = bake("--config", str(cfg), "--pool", "beta")
    assert a.finish() == 0, a.stderr
    assert b.finish() == 0, b.stderr
    pools = LockFile(tmp_path / "amis.lock.json").read().pools
    assert set(pools) == {"alpha", "beta", "other"}
    assert pools["alpha"].current.ami_id != pools["beta"].current.ami_id
    (a0, a1), (b0, b1) = sorted([*pool_spans(a.events).values(), *pool_spans(b.events).values()])
    assert b0 < a1, "the two bakes did not run at the same time"
    assert_nothing_left(ec2, a, succeeded=True)
    assert_nothing_left(ec2, b, succeeded=True)
