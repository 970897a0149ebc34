"""Helpers for end-to-end bakes in the sandbox: run the CLI as a user does, write configs,
and prove after every test that nothing was left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bake import tags

ROOT = Path(__file__).resolve().parents[2]
RUNNING = ["pending", "running", "stopping", "stopped", "shutting-down"]


def run_bake(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bake", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_config(path: Path, sandbox, pools: dict[str, dict]) -> Path:
    """A bake.toml for the sandbox: each pool reaches the builder through its sshd."""
    info = sandbox.info
    lines = ['region = "us-east-1"', ""]
    for name, extra in pools.items():
        pool = {
            "base_ami": f"ssm:{info.base_ami_ssm_parameter}",
            "instance_type": "m5.large",
            "ssh_host": info.ssh_host,
            "ssh_user": info.ssh_user,
            "ssh_cidrs": ["127.0.0.1/32"],
            "ssh_timeout": 60,
            **extra,
        }
        lines.append(f"[pools.{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in pool.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML too; a table inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def leftovers(ec2) -> dict[str, list[str]]:
    """Builders, security groups and key pairs a bake created and did not remove."""
    tool = [{"Name": f"tag:{tags.KEY_TOOL}", "Values": [tags.TOOL]}]
    inst = ec2.describe_instances(Filters=tool + [{"Name": "instance-state-name", "Values": RUNNING}])
    return {
        "instances": [i["InstanceId"] for r in inst["Reservations"] for i in r["Instances"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=tool)["SecurityGroups"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tool)["KeyPairs"]],
    }


def builder_files_containing(sandbox, secret: str) -> list[str]:
    """Files the bake wrote on the builder (the overlay's upper dirs) that hold ``secret``."""
    hits = []
    for path in Path(sandbox.info.overlay_upper).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue
    return hits


@pytest.fixture
def clean_after(sandbox, ec2):
    """Every end-to-end test ends with nothing running, no temporary group or key pair, and no
    registry credential on the builder."""
    yield
    assert leftovers(ec2) == {"instances": [], "security_groups": [], "key_pairs": []}
    user, password = sandbox.ecr_credentials()
    assert builder_files_containing(sandbox, password) == []
