"""The CLI and main.py find bake.toml and amis.lock.json the same way (bake.model.paths)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bake.model.paths import config_path, lock_path

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
