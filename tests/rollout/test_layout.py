"""The layout traps: constructs/ must not shadow PyPI's `constructs`; `bake` must not load cdktf."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.terraform import ROOT, base_env


def test_constructs_is_the_pypi_package() -> None:
    import constructs

    assert hasattr(constructs, "Construct"), f"`constructs` resolves to {constructs.__file__}: shadowed"
    assert not (ROOT / "constructs" / "__init__.py").exists(), "constructs/__init__.py shadows PyPI's constructs"
    assert "site-packages" in (constructs.__file__ or "")


def test_nodepools_imports_and_is_light() -> None:
    import nodepools

    assert Path(nodepools.__file__).parent == ROOT / "constructs" / "nodepools"
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, nodepools, nodepools.props, nodepools.tfenv; "
         "print(sorted(m for m in ('cdktf', 'cdktf_cdktf_provider_aws') if m in sys.modules))"],
        env=base_env(), capture_output=True, text=True, check=True, cwd=ROOT,
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_bake_cli_never_imports_the_rollout_side() -> None:
    code = (
        "import bake.cli, sys\n"
        "parser, _ = bake.cli.build_parser()\n"
        "parser.parse_args(['rollback', 'x', '--unpin'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('cdktf', 'cdktf_cdktf_provider_aws', 'nodepools', 'jsii')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_terraform_cli_config_points_at_the_mirror(tmp_path: Path) -> None:
    from nodepools import tfenv

    cfg = tfenv.CLI_CONFIG
    assert cfg.is_file() and "/opt/tf-plugins" in cfg.read_text()
    assert tfenv.terraform_env({})["TF_CLI_CONFIG_FILE"] == str(cfg)
    assert tfenv.terraform_env({"TF_CLI_CONFIG_FILE": "/nonexistent/.terraformrc"})["TF_CLI_CONFIG_FILE"] == str(cfg)
    own = tmp_path / "my.tfrc"
    own.write_text("")
    assert tfenv.terraform_env({"TF_CLI_CONFIG_FILE": str(own)})["TF_CLI_CONFIG_FILE"] == str(own)


def test_synthesis_never_loads_the_ami_sides_clients(tmp_path: Path) -> None:
    # main.py in a fresh interpreter, every launch mode and an adopted group: the rollout side
    # reads the data model and declares; it never loads an AWS, SSH or HTTP client.
    (tmp_path / "bake.toml").write_text(
        'region = "us-east-1"\n'
        '[defaults]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["docker.io/library/nginx:1.27"]\n'
        '[pools.tpl.asg]\nsubnet_ids = ["subnet-a"]\n[pools.tpl.asg.instance_refresh]\nmin_healthy_percentage = 90\n'
        '[pools.legacy]\nlaunch = "configuration"\n[pools.legacy.asg]\nsubnet_ids = ["subnet-a"]\n'
        '[pools.ng]\nlaunch = "nodegroup"\n[pools.ng.nodegroup]\ncluster_name = "c"\n'
        'node_role_arn = "arn:aws:iam::123456789012:role/n"\nsubnet_ids = ["subnet-a"]\n'
        '[pools.old.asg]\nname = "old-asg"\nsubnet_ids = ["subnet-a"]\n'
        '[pools.old.adopt]\nasg_name = "old-asg"\nsource = "launch_template"\nlaunch_template_id = "lt-0123"\n'
        'source_ami = "ami-0123456789abcdef0"\nadopted_at = "2026-01-01T00:00:00Z"\n'
    )
    entry = {"ami_id": "ami-0aaaaaaaaaaaaaaa1", "region": "us-east-1", "fingerprint": "sha256:f",
             "base_ami": "ami-0123456789abcdef0", "built_at": "2026-01-01T00:00:00Z",
             "images": [{"ref": "docker.io/library/nginx:1.27", "digest": "sha256:" + "0" * 64}]}
    pools = {name: {"current": entry} for name in ("tpl", "legacy", "ng", "old")}
    (tmp_path / "amis.lock.json").write_text(json.dumps({"version": 1, "pools": pools}))
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(ROOT / 'main.py')!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'main.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    if e.code:\n"
        "        raise\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'paramiko', 'requests', 'cdktf'}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    stack = json.loads((tmp_path / "cdktf.out" / "stacks" / "nodepools" / "cdk.tf.json").read_text())
    assert set(stack["resource"]["aws_autoscaling_group"]) == {"tpl", "legacy", "old"}
    assert set(stack["resource"]["aws_eks_node_group"]) == {"ng"}
    # cdktf is there (synthesis ran in this process); the AMI side's clients are not.
    assert p.stdout.strip().splitlines()[-1] == "['cdktf']", p.stdout
