"""`cdktf diff` and `cdktf deploy` as a user runs them, offline, against a moto server: deploy a
pool, rebake, the diff shows the launch template updated in place, deploy applies it. And a
checkout switched to another bake.toml gets a hint, not a bare "Backend configuration changed".

The CLI runs cdktf.json's app (``python main.py``), which writes the stack's provider lock from
the local mirror: without it cdktf asks the public registry (`terraform providers lock`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nodepools.stackdir import LOCK_FILE
from support.ci import unavailable
from support.terraform import ROOT, STACK_DIR, Moto, Project, asg_image, bake_ami, base_env, needs_terraform, record

pytestmark = [pytest.mark.terraform, needs_terraform()]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cdktf(p: Project, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`cdktf ARGS` from the repository (its cdktf.json), output and state in the project."""
    exe = shutil.which("cdktf")
    if exe is None:
        unavailable("cdktf-cli is not installed (scripts/dev.sh setup installs it: npm i -g cdktf-cli@0.21.0)")
    env = base_env({**p.env, "BAKE_CONFIG": str(config or p.config), "BAKE_LOCK": str(p.lock)})
    r = subprocess.run([exe, *args, "--output", str(p.dir / "cdktf.out")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    r.stdout, r.stderr = ANSI.sub("", r.stdout), ANSI.sub("", r.stderr)
    return r


@pytest.fixture(scope="module")
def cli_flow(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    p = Project(dir=tmp_path_factory.mktemp("cdktf"), env=dict(moto_server.env))
    p.write_config(f"""
        region = "us-east-1"
        [state]
        backend = "local"
        path = "{p.dir / 'nodepools.tfstate'}"
        [pools.cli]
        base_ami = "ami-ekslinux"
        images = ["docker.io/library/nginx:1.27"]
        [pools.cli.launch_template]
        root_volume_size = 20
        [pools.cli.asg]
        min_size = 0
        max_size = 1
        availability_zones = ["us-east-1a"]
    """)
    amis = [bake_ami(moto_server, f"cli-{i}") for i in (1, 2)]
    out: dict[str, Any] = {"project": p, "amis": amis}
    record(p.lock, "cli", amis[0], "fp1", "2025-01-01T00:00:00Z")
    out["deploy"] = cdktf(p, "deploy", "--auto-approve")
    out["lock_file"] = (p.stack / LOCK_FILE).read_text() if (p.stack / LOCK_FILE).exists() else None
    out["after_deploy"] = asg_image(moto_server, "cli")
    record(p.lock, "cli", amis[1], "fp2", "2025-02-01T00:00:00Z")  # a rebake
    out["diff"] = cdktf(p, "diff")
    out["deploy2"] = cdktf(p, "deploy", "--auto-approve")
    out["after_deploy2"] = asg_image(moto_server, "cli")
    # Another bake.toml in the same checkout, with its own state file.
    other = p.dir / "other.toml"
    other.write_text(p.config.read_text().replace(str(p.dir / "nodepools.tfstate"), str(p.dir / "other.tfstate")))
    out["switched"] = cdktf(p, "diff", config=other)
    return out


def test_deploy_works_offline_with_a_lock_from_the_mirror(cli_flow):
    d = cli_flow["deploy"]
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    assert "Could not retrieve providers for locking" not in d.stdout + d.stderr
    assert 'provider "registry.terraform.io/hashicorp/aws"' in cli_flow["lock_file"]
    assert cli_flow["after_deploy"] == cli_flow["amis"][0]


def test_diff_after_a_rebake_shows_the_template_updated_in_place(cli_flow):
    d = cli_flow["diff"]
    first, second = cli_flow["amis"]
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    # cdktf shows each address with its construct path: "aws_launch_template.cli (cli/launch_template)"
    assert re.search(r"aws_launch_template\.cli( \(\S+\))? will be updated in-place", d.stdout), d.stdout[-3000:]
    assert re.search(rf'~ image_id\s+= "{first}" -> "{second}"', d.stdout), d.stdout[-3000:]
    assert re.search(r"aws_autoscaling_group\.cli( \(\S+\))? will be updated in-place", d.stdout)
    assert "Plan: 0 to add, 2 to change, 0 to destroy." in d.stdout


def test_deploy_after_a_rebake_moves_the_group_to_the_new_ami(cli_flow):
    d = cli_flow["deploy2"]
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    assert cli_flow["after_deploy2"] == cli_flow["amis"][1]


def test_another_bake_toml_in_the_checkout_gets_a_hint(cli_flow):
    d = cli_flow["switched"]
    text = d.stdout + d.stderr
    assert d.returncode != 0 and "Backend configuration changed" in text  # terraform's own stop
    stack = cli_flow["project"].dir / STACK_DIR
    assert "was initialised for another state backend" in text
    assert f"terraform -chdir={stack} init -reconfigure" in text
