"""SIGINT and SIGTERM during each step: the right exit code, a message, nothing left behind,
the lock untouched. A second SIGINT during cleanup says what is still being removed.

Each step is made to last long enough to be interrupted inside it: the fault proxy delays the
step's EC2 call, the SSH wait points at a closed port, the pull fetches a large image.
"""

from __future__ import annotations

import signal
import time

import pytest

from faultkit import assert_nothing_left, closed_port, step_started

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


def _interrupt(bake, ec2, cfg, sig, started, before=None, held=None):
    """``held``: a proxy rule whose call must be held (in flight) when the signal goes."""
    run = bake("--config", str(cfg), timeout=120)
    run.wait_event(started, timeout=60)
    if before:
        before(run)
    if held is not None:
        assert held.holding.wait(60), f"{held.action} never reached the proxy"
    run.sent_at = time.monotonic()
    run.send(sig)
    code = run.finish()
    assert code == EXIT[sig], run.stderr
    assert f"{sig.name} received" in run.stderr
    assert f"interrupted ({sig.name}); cleanup done" in run.stderr
    assert not any(e.get("kind") == "pool.done" for e in run.events)
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")
    return run


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("step,action", [
    ("key-pair", "ImportKeyPair"),
    ("security-group", "CreateSecurityGroup"),
    ("instance", "RunInstances"),
])
def test_signal_while_an_ec2_call_is_in_flight(sandbox, ec2, bake, proxy, pool_config, sig, step, action):
    rule = proxy.add(action, delay=2.5, times=1)
    cfg = pool_config()
    run = _interrupt(bake, ec2, cfg, sig, step_started(step), held=rule)
    # The call was held by the proxy when the signal came, completed after it, and was undone
    # (assert_nothing_left in _interrupt).
    [call] = proxy.calls_to(action)
    assert call.started < run.sent_at < call.at, (call.started, run.sent_at, call.at)


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_waiting_for_ssh(sandbox, ec2, bake, proxy, pool_config, sig):
    cfg = pool_config(ssh_host=f"127.0.0.1:{closed_port()}")
    run = _interrupt(bake, ec2, cfg, sig, lambda e: e.get("status") == "retry" and e.get("step") == "connect")
    assert proxy.calls_to("TerminateInstances"), "the builder was not terminated"


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_pulling(sandbox, ec2, bake, proxy, pool_config, big_image, sig):
    big = big_image(200)  # one layer; the sandbox caps a layer below 256 MB
    cfg = pool_config(images=[big])
    run = _interrupt(bake, ec2, cfg, sig,
                     lambda e: e.get("kind") == "image" and e.get("status") == "started")
    assert not any(e.get("kind") == "image" and e.get("status") == "done" for e in run.events), \
        "the pull finished before the signal: make the image larger"


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_while_waiting_for_the_ami(sandbox, ec2, bake, proxy, pool_config, sig):
    cfg = pool_config()

    def slow_ami(run):  # from now on every DescribeImages (the AMI waiter's) takes a while
        proxy.add("DescribeImages", delay=2.0)

    run = _interrupt(bake, ec2, cfg, sig,
                     lambda e: e.get("step") == "ami" and "waiting until available" in e.get("message", ""),
                     before=slow_ami)
    ami = next(e for e in run.events if "requested" in e.get("message", ""))["message"].split()[1]
    assert proxy.calls_to("DeregisterImage"), f"{ami} was not deregistered"
    assert any(e.get("kind") == "cleanup" and ami in e.get("message", "") for e in run.events)


def test_second_sigint_during_cleanup_says_what_is_still_removed(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config(ssh_host=f"127.0.0.1:{closed_port()}")
    proxy.add("TerminateInstances", delay=3.0, times=1)
    run = bake("--config", str(cfg), timeout=120)
    run.wait_event(lambda e: e.get("status") == "retry" and e.get("step") == "connect", timeout=60)
    run.send(signal.SIGINT)
    run.wait_stderr("SIGINT received")
    # the terminate call is held by the proxy: cleanup is under way
    import time

    deadline = time.monotonic() + 20
    while not proxy.calls_to("TerminateInstances") and not _terminate_in_flight(proxy):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.send(signal.SIGINT)
    run.wait_stderr("still cleaning up, please wait")
    assert run.finish() == 130
    line = next(ln for ln in run.stderr.splitlines() if "still cleaning up" in ln)
    assert "cpu: launching the builder instance (undo)" in line, line
    assert "interrupted (SIGINT); cleanup done" in run.stderr
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def _terminate_in_flight(proxy) -> bool:
    return any(r.action == "TerminateInstances" and r.hits for r in proxy.rules)
