"""Faults from outside: EC2 throttling and 5xx, an unreachable builder, an SSH connection cut
mid-pull, registries that are down or refuse the credentials. Each ends with the right exit
code, a message naming the cause, nothing left behind and the lock as it was (or, when the
fault is retried away, a finished bake)."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from pathlib import Path

import pytest

from bake.model.lock import LockFile
from faultkit import assert_nothing_left, closed_port
from support.sandbox_bakes import fresh_image

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]


# --- EC2 throttling and 5xx -------------------------------------------------------------


def test_throttling_is_retried_and_the_bake_succeeds(sandbox, ec2, bake, proxy, pool_config):
    proxy.add("CreateSecurityGroup", status=400, code="RequestLimitExceeded", times=2)
    proxy.add("RunInstances", status=503, code="Unavailable", times=1)
    cfg = pool_config()
    run = bake("--config", str(cfg))
    assert run.finish() == 0, run.stderr
    assert [c.status for c in proxy.calls_to("CreateSecurityGroup")] == [400, 400, 200]
    assert [c.status for c in proxy.calls_to("RunInstances")] == [503, 200]
    # The retried launch carried the same idempotency token: one builder, not two.
    tokens = {c.params.get("ClientToken") for c in proxy.calls_to("RunInstances")}
    assert len(tokens) == 1 and None not in tokens
    entry = LockFile(cfg.parent / "amis.lock.json").read().pools["cpu"].current
    assert entry.ami_id.startswith("ami-")
    assert_nothing_left(ec2, run, succeeded=True)


@pytest.mark.parametrize("status,code", [(400, "RequestLimitExceeded"), (500, "InternalError")])
def test_persistent_throttling_or_5xx_fails_cleanly(sandbox, ec2, bake, proxy, pool_config, status, code):
    proxy.add("RunInstances", status=status, code=code)
    cfg = pool_config()
    # AWS_MAX_ATTEMPTS is honoured (bake's default is 8 attempts with backoff: ~35 s here).
    run = bake("--config", str(cfg), env={"AWS_MAX_ATTEMPTS": "3"})
    assert run.finish() == 1, run.stderr
    assert len(proxy.calls_to("RunInstances")) == 3
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")
    assert code in fail["message"] and "RunInstances" in fail["message"], fail
    assert "Traceback" not in run.stderr
    assert proxy.calls_to("DeleteKeyPair") and proxy.calls_to("DeleteSecurityGroup")
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_a_group_still_in_use_is_deleted_once_the_builder_lets_go(sandbox, ec2, bake, proxy, pool_config):
    # On EC2 a terminated builder's network interface holds its group for a while, and
    # DeleteSecurityGroup answers DependencyViolation (moto never does: the proxy says it).
    proxy.add("DeleteSecurityGroup", status=400, code="DependencyViolation", times=2)
    cfg = pool_config()
    run = bake("--config", str(cfg))
    assert run.finish() == 0, run.stderr
    assert [c.status for c in proxy.calls_to("DeleteSecurityGroup")] == [400, 400, 200]
    messages = [e.get("message", "") for e in run.events]
    assert not [m for m in messages if "cleanup failed" in m], messages
    assert any(m.startswith("deleted security group sg-") for m in messages), messages
    assert_nothing_left(ec2, run, succeeded=True)


def test_throttled_planning_fails_with_a_message_not_a_traceback(sandbox, ec2, bake, proxy, pool_config):
    proxy.add("GetParameter", status=400, code="ThrottlingException")
    cfg = pool_config()
    run = bake("--config", str(cfg), env={"AWS_MAX_ATTEMPTS": "2"})
    assert run.finish() == 1, run.stderr
    assert "ThrottlingException" in run.stderr and "GetParameter" in run.stderr
    assert "Traceback" not in run.stderr
    assert not proxy.calls_to("ImportKeyPair")
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


# --- the builder over SSH -----------------------------------------------------------------


def test_unreachable_builder_times_out_cleanly(sandbox, ec2, bake, proxy, pool_config):
    port = closed_port()
    cfg = pool_config(ssh_host=f"127.0.0.1:{port}", ssh_timeout=4)
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")
    assert f"cannot reach ec2-user@127.0.0.1:{port} over SSH within 4s" in fail["message"]
    assert "Unable to connect" in fail["message"] or "Refused" in fail["message"]
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def _session_sshd_of(needle: str) -> list[int]:
    """The ec2-user sshd session processes whose descendants run a command containing ``needle``."""
    procs: dict[int, tuple[int, int, str, str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            uid = int(next(ln for ln in (d / "status").read_text().splitlines() if ln.startswith("Uid:")).split()[1])
            comm = (d / "comm").read_text().strip()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration, ValueError):
            continue
        procs[int(d.name)] = (ppid, uid, comm, cmd)
    import pwd

    user = pwd.getpwnam("ec2-user").pw_uid
    found = set()
    for pid, (_, _, _, cmd) in procs.items():
        if needle not in cmd or "sshd" in cmd:
            continue
        p = pid
        while p in procs and p > 1:
            ppid, uid, comm, _ = procs[p]
            if comm == "sshd" and uid == user:
                found.add(p)
                break
            p = ppid
    return sorted(found)


@pytest.mark.slow
def test_ssh_connection_cut_mid_pull_is_retried(sandbox, ec2, bake, proxy, pool_config, big_image):
    big = big_image(200)
    small = fresh_image(sandbox)
    cfg = pool_config(images=[big, small], pull_retries=3)
    run = bake("--config", str(cfg), timeout=150)
    run.wait_event(lambda e: e.get("kind") == "image" and e.get("image") == big and e.get("status") == "started")
    repo = big.split("/", 1)[1].split(":")[0]
    deadline = time.monotonic() + 20
    while not (pids := _session_sshd_of(repo)):
        assert time.monotonic() < deadline, "no ctr pull of the big image seen on the builder"
        time.sleep(0.05)
    for pid in pids:  # the bake's own SSH session on the builder, by its process id
        os.kill(pid, signal.SIGKILL)
    code = run.finish()
    assert code == 0, run.stderr + run.stdout
    retries = [e for e in run.events if e.get("kind") == "image" and e.get("status") == "retry"]
    assert retries and any("SSH" in e["message"] for e in retries), run.events
    entry = LockFile(cfg.parent / "amis.lock.json").read().pools["cpu"].current
    assert {i.ref for i in entry.images} == {big, small}
    assert_nothing_left(ec2, run, succeeded=True)


# --- registries ---------------------------------------------------------------------------


def test_registry_down_fails_before_launching(sandbox, ec2, bake, proxy, pool_config):
    ref = f"127.0.0.1:{closed_port()}/env/app:v1"
    cfg = pool_config(images=[ref])
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    assert ref in run.stderr and "after 4 attempts" in run.stderr, run.stderr
    assert "refused" in run.stderr.lower()
    assert not proxy.calls_to("ImportKeyPair") and not proxy.calls_to("RunInstances")
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def _wrong_ecr_token(body: bytes) -> bytes:
    data = json.loads(body)
    for item in data["authorizationData"]:
        item["authorizationToken"] = base64.b64encode(b"AWS:expired-token-0123456789").decode()
    return json.dumps(data).encode()


def test_refused_registry_credentials_fail_clearly_and_do_not_leak(sandbox, ec2, bake, proxy, pool_config):
    # ECR hands out a token the registry refuses (expired, another account's...).
    proxy.add("GetAuthorizationToken", rewrite=_wrong_ecr_token)
    ref = sandbox.info.ecr_images[0]
    cfg = pool_config(images=[ref])
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    assert ref in run.stderr
    assert "401" in run.stderr or "denied" in run.stderr.lower() or "unauthorized" in run.stderr.lower(), run.stderr
    for token in ("expired-token-0123456789", base64.b64encode(b"AWS:expired-token-0123456789").decode()):
        assert token not in run.stderr and token not in run.stdout
    assert not proxy.calls_to("RunInstances")
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_refused_ecr_authorization_fails_clearly(sandbox, ec2, bake, proxy, pool_config):
    proxy.add("GetAuthorizationToken", status=400, code="AccessDeniedException")
    ref = sandbox.info.ecr_images[0]
    cfg = pool_config(images=[ref])
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    assert "GetAuthorizationToken" in run.stderr and "AccessDenied" in run.stderr, run.stderr
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")

