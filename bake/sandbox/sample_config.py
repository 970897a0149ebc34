"""STATE/bake.toml: the config the README demo bakes against the sandbox.

Pool ``cpu`` bakes every sample image (and the ECR one) into the EKS base AMI with containerd;
pool ``legacy`` bakes two with docker. Both reach the builder through the sandbox's sshd.
"""

from __future__ import annotations

import os
from pathlib import Path

import tomlkit

from bake.model.config import load_config
from bake.sandbox.layout import BASE_AMI_PARAMETER, HOST, REGION, SSH_USER, Layout


def _lines(items: list[str]) -> tomlkit.items.Array:
    arr = tomlkit.array()
    arr.extend(items)
    return arr.multiline(True)


def render(layout: Layout, images: list[str], ecr_images: list[str]) -> str:
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Written by `python -m bake sandbox up`: the sandbox's demo config. Rewritten on every up."))
    doc["region"] = REGION
    builder = {
        "base_ami": f"ssm:{BASE_AMI_PARAMETER}",
        "instance_type": "m5.large",
        "ssh_host": layout.ssh_host,
        "ssh_cidrs": [f"{HOST}/32"],
        "ssh_user": SSH_USER,
    }
    pools = tomlkit.table(is_super_table=True)
    cpu = tomlkit.table()
    cpu.update({**builder, "runtime": "containerd", "images": _lines([*images, *ecr_images])})
    legacy = tomlkit.table()
    legacy.update({**builder, "runtime": "docker", "images": _lines(images[:2])})
    pools["cpu"] = cpu
    pools["legacy"] = legacy
    doc["pools"] = pools
    return tomlkit.dumps(doc)


def write(layout: Layout, images: list[str], ecr_images: list[str]) -> Path:
    path = layout.config_path
    tmp = path.with_name(".bake.toml.tmp")
    tmp.write_text(render(layout, images, ecr_images))
    os.replace(tmp, path)
    load_config(path)  # the sandbox's own config must always pass the real validation
    return path
