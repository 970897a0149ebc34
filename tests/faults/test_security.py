"""Security promises, end to end: host keys checked against the console's fingerprints (or
trusted on first use, said so), registry credentials never in logs, events or builder files,
SSH admitted only from the configured CIDRs, IMDSv2 required, hostile values never run."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from support.sandbox_bakes import builder_files_containing, fresh_image
from faultkit import assert_nothing_left, ssh_fingerprint
from faultproxy import console_with_fingerprints

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]


def _no_secret_anywhere(sandbox, run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.stdout, "a secret in the JSON event stream"
        assert secret not in run.stderr, "a secret on stderr"
        assert builder_files_containing(sandbox, secret) == [], "a secret left in a file on the builder"


def test_console_fingerprint_verified_docker_bake_leaks_no_ecr_token(sandbox, ec2, bake, proxy, pool_config):
    info = sandbox.info
    real = ssh_fingerprint(info.ssh_host_key)
    proxy.add("GetConsoleOutput", rewrite=console_with_fingerprints(["SHA256:" + "A" * 43, real]))
    # docker login writes the ECR token to /root/.docker/config.json on the builder: the scrub
    # must remove it before the snapshot.
    cfg = pool_config(images=[fresh_image(sandbox), info.ecr_images[0]], runtime="docker", host_key_policy="console")
    run = bake("--config", str(cfg))
    assert run.finish() == 0, run.stderr
    messages = [e.get("message", "") for e in run.events]
    assert any("verifying the host key against 2 console fingerprint(s)" in m for m in messages), messages
    assert not any("on first use" in m for m in messages)
    user, password = sandbox.ecr_credentials()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    _no_secret_anywhere(sandbox, run, password, token)
    # IMDSv2 required on the builder; SSH admitted from the configured CIDR only
    launch = proxy.calls_to("RunInstances")[-1].params
    assert launch["MetadataOptions.HttpTokens"] == "required"
    assert launch["MetadataOptions.HttpEndpoint"] == "enabled"
    ingress = proxy.calls_to("AuthorizeSecurityGroupIngress")[-1].params
    cidrs = sorted(v for k, v in ingress.items() if k.endswith(("CidrIp", "CidrIpv6")))
    assert cidrs == ["127.0.0.1/32"], ingress
    assert ingress["IpPermissions.1.FromPort"] == ingress["IpPermissions.1.ToPort"] == "22"
    assert_nothing_left(ec2, run, succeeded=True)


def test_wrong_console_fingerprint_refuses_to_connect(sandbox, ec2, bake, proxy, pool_config):
    wrong = "SHA256:" + "B" * 43
    proxy.add("GetConsoleOutput", rewrite=console_with_fingerprints([wrong]))
    cfg = pool_config(host_key_policy="auto")
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")["message"]
    assert "not among the fingerprints the instance printed on its console" in fail and wrong in fail
    assert ssh_fingerprint(sandbox.info.ssh_host_key) in fail
    assert not any(e.get("kind") == "image" for e in run.events), "nothing may run on an unverified host"
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


@pytest.mark.slow
def test_console_policy_without_fingerprints_fails(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config(host_key_policy="console", ssh_timeout=2)
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")["message"]
    assert "printed no SSH host key fingerprints" in fail and 'host_key_policy = "console"' in fail
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_hostile_registry_credential_never_runs_or_leaks(sandbox, ec2, bake, proxy, pool_config, tmp_path):
    """A grammar-valid config whose registry credential (from the environment) is a shell
    payload: it reaches the builder only as data on stdin, runs nothing, and never shows."""
    marker = Path("/tmp") / f"pwned-{tmp_path.name}"
    user = f"u$(touch {marker})`touch {marker}`"
    password = f"p';touch {marker};'\"$(touch {marker})\"-sekr1t"
    cfg = pool_config()
    registry = sandbox.info.registry
    cfg.write_text(cfg.read_text() + f'\n[registries."{registry}"]\nusername_env = "HOSTILE_USER"\n'
                   'password_env = "HOSTILE_PASSWORD"\n')
    run = bake("--config", str(cfg), env={"HOSTILE_USER": user, "HOSTILE_PASSWORD": password})
    assert run.finish() == 0, run.stderr
    # auto policy and moto's console carries no fingerprints: trusted on first use, and said so
    assert any(e.get("kind") == "warn" and "trusting SHA256:" in e["message"] and "on first use" in e["message"]
               for e in run.events)
    assert not marker.exists()
    assert not (Path(sandbox.info.overlay_upper) / marker.relative_to("/")).exists()
    _no_secret_anywhere(sandbox, run, password)
    assert_nothing_left(ec2, run, succeeded=True)
