"""The CLI, the lifecycle commands and main.py find bake.toml, amis.lock.json and the region the
same way (bake.model.workspace)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bake.errors import UsageError
from bake.model.workspace import Workspace, config_path, lock_path, resolve_region

from support.cli import ROOT, run_bake

CONFIG = 'region = "us-east-1"\n[pools.web]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["docker.io/library/nginx:1.27"]\n'


def test_flags_then_environment_then_defaults():
    env = {"BAKE_CONFIG": "/etc/x/bake.toml"}
    assert config_path(None, {}) == Path("bake.toml")
    assert config_path(None, env) == Path("/etc/x/bake.toml")
    assert config_path("mine.toml", env) == Path("mine.toml")
    assert lock_path(config_path(None, env), None, env) == Path("/etc/x/amis.lock.json")  # beside the config
    assert lock_path("/etc/x/bake.toml", None, {"BAKE_LOCK": "/l.json"}) == Path("/l.json")
    assert lock_path("/etc/x/bake.toml", "given.json", {"BAKE_LOCK": "/l.json"}) == Path("given.json")
    assert lock_path(None, None, {}) == Path("amis.lock.json")


def test_main_py_and_the_cli_read_the_lock_beside_a_bake_config_elsewhere(tmp_path):
    # The working directory has a good lock; the config's folder a corrupt one. Both tools must
    # read (and refuse) the one beside the config. main.py read ./amis.lock.json before issue 20.
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    (elsewhere / "bake.toml").write_text(CONFIG)
    (elsewhere / "amis.lock.json").write_text("{ not json")
    (work / "amis.lock.json").write_text(json.dumps({"version": 1, "pools": {}}))
    env = {"BAKE_CONFIG": str(elsewhere / "bake.toml")}
    cli = run_bake("rollback", "web", cwd=work, env=env)
    synth = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=work, capture_output=True, text=True,
                           env={**__import__("os").environ, **env}, timeout=300)
    bad = str(elsewhere / "amis.lock.json")
    assert cli.returncode == 2 and bad in cli.stderr, cli.stderr
    assert synth.returncode == 2 and bad in synth.stderr, synth.stderr
    assert not (work / "cdktf.out").exists()


def test_the_workspace_resolves_once_what_every_command_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"BAKE_CONFIG": str(tmp_path / "x" / "bake.toml")}
    ws = Workspace.resolve(environ=env)
    assert (ws.config_path, ws.lock_path, ws.config_named) == (tmp_path / "x" / "bake.toml", tmp_path / "x" / "amis.lock.json", True)
    with pytest.raises(Exception, match="bake.toml"):
        ws.optional_config()  # named: it must exist
    plain = Workspace.resolve(environ={})
    assert (plain.config_path, plain.lock_path, plain.config_named) == (Path("bake.toml"), Path("amis.lock.json"), False)
    assert plain.optional_config() is None  # prune and sweep run without one
    Path("bake.toml").write_text(CONFIG)
    assert plain.optional_config().region == "us-east-1" and plain.config().pools["web"]
    args = __import__("argparse").Namespace(config=None, lock="l.json", region="eu-west-1")
    assert Workspace.of(args).lock_path == Path("l.json") and Workspace.of(args).region_flag


def test_the_region_is_the_flag_then_the_config_then_the_aws_chain():
    cfg = Path("bake.toml")
    assert resolve_region("eu-west-1", "us-east-1", lambda: "ap-south-1", cfg) == "eu-west-1"
    assert resolve_region(None, "us-east-1", lambda: "ap-south-1", cfg) == "us-east-1"
    assert resolve_region(None, None, lambda: "ap-south-1", cfg) == "ap-south-1"
    with pytest.raises(UsageError, match="no AWS region: set region in bake.toml, or set AWS_REGION"):
        resolve_region(None, None, lambda: None, cfg)
    with pytest.raises(UsageError, match="no AWS region: pass --region, "):
        resolve_region(None, None, lambda: None, cfg, flag=True)
