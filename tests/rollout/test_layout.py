"""The layout traps: constructs/ must not shadow PyPI's `constructs`; `bake` must not load cdktf."""

from __future__ import annotations

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
