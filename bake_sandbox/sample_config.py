"""STATE/bake.toml: the config the README demo bakes against the sandbox.

Pool ``cpu`` bakes every sample image (and the ECR one) into the EKS base AMI with containerd
and rolls out through a launch template; pool ``legacy`` bakes two with docker and rolls out
through a launch configuration. Both reach the builder through the sandbox's sshd.
"""

from __future__ import annotations

import os
from pathlib import Path

import tomlkit

from bake.model.config import load_config
from bake_sandbox.layout import BASE_AMI_PARAMETER, HOST, REGION, SSH_USER, Layout


def _lines(items: list[str]) -> tomlkit.items.Array:
    arr = tomlkit.array()
    arr.extend(items)
    return arr.multiline(True)


# What an EKS node's user data looks like on AL2023 (nodeadm); passed through as is. (moto also
# cannot launch an ASG whose launch template has no user data.)
USER_DATA = """---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: sandbox
    apiServerEndpoint: https://127.0.0.1:6443
    certificateAuthority: c2FuZGJveA==
    cidr: 10.100.0.0/16
"""


def _launch_template() -> tomlkit.items.Table:
    lt = tomlkit.table()
    lt["user_data"] = tomlkit.string(USER_DATA, multiline=True)
    return lt


def _asg() -> tomlkit.items.Table:
    """The rollout side: a small ASG in the sandbox's region (no instance refresh: moto lacks it)."""
    asg = tomlkit.table()
    asg.update({"min_size": 1, "max_size": 3, "availability_zones": [f"{REGION}a"]})
    return asg


def _builder(layout: Layout) -> dict:
    """The AMI side's keys that reach the sandbox's builder."""
    return {
        "base_ami": f"ssm:{BASE_AMI_PARAMETER}",
        "instance_type": "m5.large",
        "ssh_host": layout.ssh_host,
        "ssh_cidrs": [f"{HOST}/32"],
        "ssh_user": SSH_USER,
        # moto cannot launch an ASG whose root device mapping names no size (AWS takes the
        # AMI's snapshot size); an explicit size keeps the demo's rollout runnable there.
        "root_volume_size": 20,
    }


def _pool(layout: Layout, images: list[str], **keys: object) -> tomlkit.items.Table:
    pool = tomlkit.table()
    pool.update({**_builder(layout), **keys, "images": _lines(images)})
    pool["launch_template"] = _launch_template()
    pool["asg"] = _asg()
    return pool


def _document(pools: dict[str, tomlkit.items.Table], state_path: Path, comment: str) -> str:
    doc = tomlkit.document()
    doc.add(tomlkit.comment(comment))
    doc["region"] = REGION
    table = tomlkit.table(is_super_table=True)
    table.update(pools)
    doc["pools"] = table
    state = tomlkit.table()
    state.update({"backend": "local", "path": str(state_path)})
    doc["state"] = state
    return tomlkit.dumps(doc)


def render(layout: Layout, images: list[str], ecr_images: list[str]) -> str:
    pools = {
        "cpu": _pool(layout, [*images, *ecr_images], runtime="containerd"),
        "legacy": _pool(layout, images[:2], runtime="docker", launch="configuration"),
    }
    # The demo's Terraform state lives with the sandbox, whose moto holds the resources.
    return _document(pools, layout.root / "terraform.tfstate",
                     "Written by `python -m bake sandbox up`: the sandbox's demo config. Rewritten on every up.")


def render_pool(layout: Layout, name: str, images: list[str], state_path: Path) -> str:
    """A config of one containerd pool rolled out through a launch template, with its own
    Terraform state: what the pipeline rehearsal (and a test) starts a project from."""
    return _document({name: _pool(layout, images, runtime="containerd")}, state_path,
                     f"pool {name}: the sandbox's builder, a launch template and a small ASG")


def write(layout: Layout, images: list[str], ecr_images: list[str]) -> Path:
    path = layout.config_path
    tmp = path.with_name(".bake.toml.tmp")
    tmp.write_text(render(layout, images, ecr_images))
    os.replace(tmp, path)
    load_config(path)  # the sandbox's own config must always pass the real validation
    return path
