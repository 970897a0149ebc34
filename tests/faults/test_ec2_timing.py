"""Bakes against EC2's clock (bake_sandbox.ec2_clock in front of the sandbox's moto and sshd):
a pending instance is waited for and each wait notices its change within about a second,
without a flood of calls; one that never runs times out naming ssh_timeout; a SIGINT during
a long pending exits 130 at once and leaves nothing.

The clock is private to each test (its own ports, in front of the shared moto), so other
users of the sandbox keep moto's instant answers. The fault proxy in front of it logs calls.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from faultkit import BakeRun, assert_nothing_left, step_started
from faultproxy import FaultProxy
from support.sandbox_bakes import write_config

from bake_sandbox.ec2_clock import Ec2Clock, Timing

IMAGE_MB = 48  # long enough a pull (a few ctr frames) to show its bytes on the way

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]


@pytest.fixture
def ec2_shaped(sandbox, tmp_path, big_image) -> Iterator[Callable[..., tuple[Ec2Clock, FaultProxy, BakeRun]]]:
    """Start a bake whose EC2 answers come through a private clock with ``timing``."""
    started: list[tuple[Ec2Clock, FaultProxy, BakeRun]] = []

    def start(timing: Timing, timeout: float = 120, **pool: object) -> tuple[Ec2Clock, FaultProxy, BakeRun]:
        host, _, port = sandbox.info.ssh_host.rpartition(":")
        clock = Ec2Clock(sandbox.info.moto_endpoint, timing, ssh_upstream=(host, int(port))).start()
        proxy = FaultProxy(clock.url).start()
        cfg = write_config(tmp_path / "bake.toml", sandbox, {"cpu": {
            "images": [big_image(IMAGE_MB)], "ssh_host": f"127.0.0.1:{clock.ssh_port}", **pool}})
        env = {**os.environ, **sandbox.env(), "AWS_ENDPOINT_URL": proxy.url}
        run = BakeRun(["--config", str(cfg)], env, timeout, proxy)
        started.append((clock, proxy, run))
        return clock, proxy, run

    yield start
    for clock, proxy, run in started:
        run.kill()
        proxy.stop()
        clock.stop()


def waits(run: BakeRun) -> dict[str, dict]:
    return {e["data"]["wait"]: e["data"] for e in run.events if e.get("kind") == "wait"}


# Each state's delay on the clock, chosen where bake.polling promises a lag under a second:
# running and the AMI within the quick first 3 s; stopped and terminated within 3 s of EC2's
# usual time for them (11 s and 7 s), where the policy polls every 0.5 s. bench/ec2_bench.py
# measures the lag at EC2's own times.
TIMING = Timing(pending=2.5, ssh_after_running=2, stopping=8.5, shutting_down=5, ami_base=2.9, ami_per_gib=0)
STATE = re.compile(rb"<instanceState>\s*<code>\d+</code>\s*<name>([a-z-]+)</name>|<imageState>([a-z]+)</imageState>")


def _state(call) -> str | None:  # noqa: ANN001
    """The instance or image state the proxy passed back to bake in this answer."""
    m = STATE.search(call.answer)
    return (m.group(1) or m.group(2)).decode() if m else None


def noticed(proxy: FaultProxy, trigger: str, poll: str, key: str, resource: str, delay: float, old: str,
            new: str) -> dict[str, float]:
    """From the fault proxy's own timestamps: the change is due ``delay`` s after the request
    that caused it arrived (the clock starts it a little later, so the lag below is an upper
    bound); the poll that noticed is the first whose answer showed ``new``."""
    [cause] = [c for c in proxy.calls_to(trigger) if resource.encode() in c.answer or c.params.get(key) == resource]
    due = cause.started + delay
    polls = [c for c in proxy.calls_to(poll) if c.params.get(key) == resource and c.started >= cause.started]
    states = [_state(c) for c in polls]
    assert new in states, (trigger, states)
    first = states.index(new)
    assert first > 0 and states[first - 1] == old, (trigger, states)  # it waited: it saw the old state first
    return {"lag": polls[first].started - due, "polls": first + 1, "delay": delay}


def test_each_wait_notices_its_change_within_a_second(sandbox, ec2, ec2_shaped):
    clock, proxy, run = ec2_shaped(TIMING)
    assert run.finish() == 0, run.stderr
    assert set(waits(run)) == {"instance_running", "ssh_ready", "instance_stopped", "image_available",
                               "instance_terminated"}, waits(run)
    [instance] = [k.split()[0] for k in clock.simulated_delays() if k.endswith(" pending") and k.startswith("i-")]
    [(image, ami_delay)] = [(k.split()[0], v) for k, v in clock.simulated_delays().items() if k.startswith("ami-")]
    found = {
        "instance_running": noticed(proxy, "RunInstances", "DescribeInstances", "InstanceId.1", instance,
                                    TIMING.pending, "pending", "running"),
        "instance_stopped": noticed(proxy, "StopInstances", "DescribeInstances", "InstanceId.1", instance,
                                    TIMING.stopping, "stopping", "stopped"),
        "image_available": noticed(proxy, "CreateImage", "DescribeImages", "ImageId.1", image, ami_delay,
                                   "pending", "available"),
        "instance_terminated": noticed(proxy, "TerminateInstances", "DescribeInstances", "InstanceId.1", instance,
                                       TIMING.shutting_down, "shutting-down", "terminated"),
    }
    for name, f in found.items():
        # Never before the change (the answer said so), and within a second of it.
        assert 0 <= f["lag"] <= 1.0, (name, f)
        # No flood: never more than two polls a second (plus the first at once, and the AMI
        # step's own look at the image before its wait).
        assert f["polls"] <= 2 * f["delay"] + 3, (name, f)
    # The AMI wait showed its elapsed time and the snapshots' progress, at a bounded rate.
    progress = [e["data"] for e in run.events if e.get("step") == "ami" and e.get("status") == "progress"]
    assert progress and all(0 <= p["snapshot_progress"] < 100 for p in progress), progress
    assert [p["elapsed"] for p in progress] == sorted(p["elapsed"] for p in progress)
    assert len(progress) <= ami_delay / 2 + 1, progress
    # The pull reported its bytes (of the layers' total, once ctr lists a layer's size) and
    # rate from ctr's own progress output, at once and then each second.
    pulled = [e["data"] for e in run.events if e.get("kind") == "image" and e.get("status") in ("progress", "done")]
    assert pulled and max(p.get("bytes") or 0 for p in pulled) > 0, pulled
    totals = [p["total"] for p in pulled if p.get("total")]
    assert totals and all(0.9 * IMAGE_MB * 2**20 <= t <= 1.1 * IMAGE_MB * 2**20 for t in totals), totals
    # SSH is refused until running + ssh_after_running: the wait retried, then got in.
    assert waits(run)["ssh_ready"]["calls"] >= 2, waits(run)["ssh_ready"]
    assert len(proxy.calls_to("DescribeInstances")) <= 40
    assert_nothing_left(ec2, run, succeeded=True)


def test_an_instance_that_never_runs_times_out_naming_ssh_timeout(sandbox, ec2, ec2_shaped):
    _, proxy, run = ec2_shaped(Timing(pending=3600, shutting_down=0.5), ssh_timeout=4)
    code = run.finish()
    assert code == 1, run.stderr
    said = run.stdout + run.stderr  # --json: the failure is an event on stdout
    assert "did not start" in said and "ssh_timeout" in said, said
    assert proxy.calls_to("TerminateInstances"), "the pending builder was not terminated"
    assert_nothing_left(ec2, run)


def test_sigint_during_a_long_pending_exits_130_at_once_and_leaves_nothing(sandbox, ec2, ec2_shaped):
    _, proxy, run = ec2_shaped(Timing(pending=3600, shutting_down=0))
    run.wait_event(step_started("instance"), timeout=60)
    run.wait_event(lambda e: e.get("step") == "instance" and "waiting for running" in e.get("message", ""), timeout=60)
    time.sleep(4)  # into the slower polls, where a sleep of 2 s is under way
    sent = time.monotonic()
    run.send(signal.SIGINT)
    code = run.finish()
    took = time.monotonic() - sent
    assert code == 130, run.stderr
    # The sleep wakes at once; terminating the builder and removing its group and key pair
    # are a handful of calls to moto.
    assert took < 1.5, f"exit took {took:.2f}s after SIGINT"
    assert proxy.calls_to("TerminateInstances")
    assert_nothing_left(ec2, run)
