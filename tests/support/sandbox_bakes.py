"""Bakes in the sandbox: write a config for it, and prove after every test that nothing was left
behind (no builder, group or key pair; no registry credential on the builder)."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

from bake import tags
from bake_sandbox import builder

RUNNING = ["pending", "running", "stopping", "stopped", "shutting-down"]


def fresh_image(sandbox, size_mb: float = 1, prefix: str = "faults") -> str:
    """A newly pushed image in the sample registry (random content: a fingerprint no AMI has
    yet); its reference."""
    repo, tag = f"{prefix}/{uuid.uuid4().hex[:10]}", "v1"
    sandbox.push_image(repo, tag, size_mb=size_mb)
    return f"{sandbox.info.registry}/{repo}:{tag}"


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


def in_builder(sandbox, script: str, stdin: str | None = None) -> str:
    """Run ``script`` as root in the builder's mount namespace (what a command over SSH sees)."""
    pid = builder.daemon(sandbox.layout).pid()
    assert pid, "the sandbox's sshd is not running"
    r = subprocess.run(["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", "sh", "-c", script],
                       input=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def event_time(ev: dict) -> datetime:
    return datetime.fromisoformat(ev["time"].replace("Z", "+00:00"))


def pool_spans(events: list[dict]) -> dict[str, tuple[datetime, datetime]]:
    """pool -> (its pool.start, its pool.done or pool.fail), from ``build --json`` events."""
    start, end = {}, {}
    for ev in events:
        if ev.get("kind") == "pool.start":
            start[ev["pool"]] = event_time(ev)
        elif ev.get("kind") in ("pool.done", "pool.fail") and ev.get("pool") in start:
            end[ev["pool"]] = event_time(ev)
    return {p: (start[p], end[p]) for p in start}
