"""Every command that calls AWS, fed an HTML 500 page for one of its calls (what moto 5.2 and
many proxies answer), ends with one line naming the call and what came back, and exit 1,
never a traceback (issue 20). The page comes from the fault proxy in front of the sandbox's
moto; every other call is moto's real answer, so each command gets as far as that call."""

from __future__ import annotations

import pytest

from faultkit import LOCK_BEFORE, assert_nothing_left
from support.cli import run_bake

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(300)]

# command -> (its arguments, the call that gets the page). prune asks DescribeImages first and
# DescribeFastSnapshotRestores only when it has AMIs to rank: the first is certain to come.
CASES = {
    "plan": (["plan"], "DescribeImages"),
    "prune": (["prune", "--keep", "1"], "DescribeImages"),
    "sweep": (["sweep"], "DescribeSecurityGroups"),
    "adopt": (["adopt", "no-such-group", "--pool", "adopted"], "DescribeAutoScalingGroups"),
}


def _assert_one_line(stderr: str, action: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("bake: error:")]
    assert len(errors) == 1, stderr
    assert action in errors[0] and "HTML page ('500 Internal Server Error')" in errors[0], errors[0]


@pytest.mark.parametrize("command", sorted(CASES))
def test_an_html_500_ends_the_command_in_one_line(command, sandbox, proxy, pool_config, tmp_path):
    args, action = CASES[command]
    cfg = pool_config(base_ami="ami-ekslinux")
    proxy.add(action, status=500, html=True)
    env = {**sandbox.env(), "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "2"}
    r = run_bake(*args, "--config", str(cfg), env=env, cwd=tmp_path, timeout=240)
    assert r.returncode == 1, (r.returncode, r.stderr)
    _assert_one_line(r.stderr, action)
    assert [c.injected for c in proxy.calls_to(action)] == [True, True]  # a 5xx is retried (AWS_MAX_ATTEMPTS=2)
    assert (tmp_path / "amis.lock.json").read_text() == LOCK_BEFORE


def test_build_ends_in_one_line_and_removes_what_it_made(sandbox, ec2, proxy, bake, pool_config):
    cfg = pool_config()
    proxy.add("RunInstances", status=500, html=True)
    run = bake("--config", str(cfg), env={"AWS_MAX_ATTEMPTS": "2"})
    assert run.finish() == 1, run.stderr
    # --json: the failure is the pool's event on stdout, one line; stderr holds no traceback.
    assert "Traceback" not in run.stderr, run.stderr
    failed = [e["message"] for e in run.events if e.get("status") == "failed"]
    assert failed and all("\n" not in m for m in failed), run.events
    assert any("RunInstances" in m and "HTML page ('500 Internal Server Error')" in m for m in failed), failed
    assert proxy.calls_to("CreateSecurityGroup")  # it got that far, and undid it
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_rollback_and_a_bare_command_ask_aws_nothing(sandbox, proxy, pool_config, tmp_path):
    # rollback edits the lock only; a bare `python -m bake` prints help (exit 2) and launches
    # nothing. Neither sends the proxy a single request, so no page can reach them.
    from bake.model.lock import LockEntry, LockFile

    cfg = pool_config()
    lock = LockFile(cfg.parent / "amis.lock.json")
    for i, ami in enumerate(["ami-00000001", "ami-00000002"], start=1):
        entry = LockEntry(ami_id=ami, region="us-east-1", fingerprint=f"fp-{i}", base_ami="ami-ekslinux",
                          images=[], built_at=f"2026-0{i}-01T00:00:00Z")
        lock.update("cpu", lambda p, e=entry: p.promoted(e))
    env = {**sandbox.env(), "AWS_ENDPOINT_URL": proxy.url}
    r = run_bake("rollback", "cpu", "--config", str(cfg), env=env, cwd=tmp_path)
    assert r.returncode == 0 and "rolled back from ami-00000002 to ami-00000001" in r.stdout, r.stderr
    r = run_bake(env=env, cwd=tmp_path)
    assert r.returncode == 2 and "COMMAND" in r.stderr, r.stderr
    assert proxy.calls == []
