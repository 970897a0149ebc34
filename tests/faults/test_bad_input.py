"""Bad input through the CLI, as a user meets it: exit 2, a message naming the problem, and
nothing launched (the fault proxy's log shows no key pair, group or instance was asked for).

tests/unit/test_config.py covers the config messages in depth and tests/e2e/test_bake.py the
missing base AMI and SSM parameter; these add the end-to-end guarantees around them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultkit import LOCK_BEFORE
from support.sandbox_bakes import fresh_image

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(120)]

MUTATING = ("ImportKeyPair", "CreateKeyPair", "CreateSecurityGroup", "RunInstances", "CreateImage")


def _pool(sandbox, **extra) -> str:
    info = sandbox.info
    pool = {"base_ami": f"ssm:{info.base_ami_ssm_parameter}", "ssh_host": info.ssh_host,
            "ssh_cidrs": ["127.0.0.1/32"], "ssh_timeout": 30, "images": [f"{info.registry}/env/app-1:v1"], **extra}
    return 'region = "us-east-1"\n\n[pools.cpu]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in pool.items())


def _expect_usage_error(bake, proxy, cfg: Path, *needles: str, marker: Path | None = None) -> str:
    run = bake("--config", str(cfg), timeout=60)
    assert run.finish() == 2, run.stderr
    for needle in needles:
        assert needle in run.stderr, (needle, run.stderr)
    assert "Traceback" not in run.stderr
    assert not any(e.get("kind") == "pool.start" for e in run.events)
    assert not [c.action for c in proxy.calls if c.action in MUTATING]
    if marker is not None:
        assert not marker.exists()
    return run.stderr


@pytest.mark.parametrize("text,needles", [
    ("[pools.cpu\nimages = [", ["not valid TOML"]),
    ("[pools.cpu]\nbase_ami = 'ami-ekslinux'\nimages = ['python:3']\nimages = ['x']\n", ["not valid TOML"]),
])
def test_malformed_toml(sandbox, bake, proxy, tmp_path, text, needles):
    cfg = tmp_path / "bake.toml"
    cfg.write_text(text)
    _expect_usage_error(bake, proxy, cfg, str(cfg), *needles)


@pytest.mark.parametrize("extra,needles", [
    ({"ssh_timout": 30}, ["pools.cpu", "unknown key 'ssh_timout'", "did you mean 'ssh_timeout'"]),
    ({"ssh_timeout": "30"}, ["pools.cpu.ssh_timeout", "'30'"]),
    ({"pull_concurrency": 0}, ["pools.cpu.pull_concurrency"]),
    ({"host_key_policy": "trust-me"}, ["pools.cpu.host_key_policy", "'trust-me'"]),
    ({"ssh_cidrs": ["everyone"]}, ["'everyone' is not a CIDR block"]),
    ({"images": ["127.0.0.1:45443/Env/App:v1"]}, ["invalid image reference", "Env/App"]),
    ({"images": ["127.0.0.1:45443/env/app:" + "t" * 129]}, ["invalid image reference"]),
    ({"images": ["127.0.0.1:45443/env/app@sha256:short"]}, ["invalid image reference"]),
])
def test_invalid_values(sandbox, bake, proxy, tmp_path, extra, needles):
    cfg = tmp_path / "bake.toml"
    cfg.write_text(_pool(sandbox, **extra))
    _expect_usage_error(bake, proxy, cfg, str(cfg), *needles)


@pytest.mark.parametrize("table,needles", [
    ("[pools.cpu.asg]\nsubnet_ids = ['subnet-a']\n[pools.cpu.launch_template]\nvolume_initialisation_rate = 400\n",
     ["pools.cpu.launch_template: unknown key 'volume_initialisation_rate'"]),
    ("[pools.cpu.asg]\nsubnet_ids = ['subnet-a']\nmin_size = 3\nmax_size = 2\n",
     ["pools.cpu.asg: min_size 3 is above max_size 2"]),
    ("[state]\nbackend = 's3'\n", ["state: backend = \"s3\" needs bucket and key"]),
])
def test_invalid_rollout_tables_fail_the_build_before_anything_launches(sandbox, bake, proxy, tmp_path, table, needles):
    cfg = tmp_path / "bake.toml"
    cfg.write_text(_pool(sandbox) + table)
    _expect_usage_error(bake, proxy, cfg, str(cfg), *needles)


def _payloads(marker: Path) -> list[str]:
    return [f"x; touch {marker}", f"x && touch {marker}", f"$(touch {marker})", f"`touch {marker}`",
            f"x | touch {marker}", f"x\ntouch {marker}", f"x' ; touch {marker} ; '"]


@pytest.mark.parametrize("key", ["images", "ssh_user", "ssh_host", "base_ami", "instance_type_in_path"])
def test_shell_metacharacters_are_refused_before_anything_runs(sandbox, bake, proxy, tmp_path, key):
    marker = tmp_path / "pwned"
    for i, payload in enumerate(_payloads(marker)):
        cfg = tmp_path / f"bake{i}.toml"
        if key == "images":
            cfg.write_text(_pool(sandbox, images=[f"{sandbox.info.registry}/env/{payload}"]))
            needles = ["invalid image reference"]
        elif key == "ssh_user":
            cfg.write_text(_pool(sandbox, ssh_user=payload))
            needles = ["pools.cpu.ssh_user", "is not a valid user name"]
        elif key == "ssh_host":
            cfg.write_text(_pool(sandbox, ssh_host=f"127.0.0.1:45022{payload}"))
            needles = ["pools.cpu.ssh_host"]
        elif key == "base_ami":
            cfg.write_text(_pool(sandbox, base_ami=f"ami-{payload}"))
            needles = ["pools.cpu.base_ami"]
        else:  # a config path full of metacharacters is only ever a local path
            cfg = tmp_path / f"cfg {payload.replace('/', '_')}.toml"
            cfg.write_text(_pool(sandbox, ssh_timout=1))
            needles = ["unknown key 'ssh_timout'"]
        _expect_usage_error(bake, proxy, cfg, *needles, marker=marker)
        proxy.clear()


def test_corrupt_lock_is_named_and_left_as_it_is(sandbox, bake, proxy, tmp_path):
    cfg = tmp_path / "bake.toml"
    cfg.write_text(_pool(sandbox, images=[fresh_image(sandbox)]))
    lock = tmp_path / "amis.lock.json"
    for corrupt in [LOCK_BEFORE[: len(LOCK_BEFORE) // 2], '{"version": 99, "pools": {}}',
                    '{"version": 1, "pools": {"cpu": {"current": {"ami_id": 7}}}}']:
        lock.write_text(corrupt)
        stderr = _expect_usage_error(bake, proxy, cfg, str(lock), "corrupt lock file", "left as it is")
        assert lock.read_text() == corrupt, "a corrupt lock file must not be overwritten"
        assert not list(tmp_path.glob(".amis.lock.json.*.tmp"))
        proxy.clear()
    del stderr
