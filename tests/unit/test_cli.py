"""The CLI as a user meets it: documented commands, exit codes, secrets kept out of output."""

from __future__ import annotations

import io
import json
import re

import pytest

from bake import cli
from bake.progress import JsonReporter, PlainReporter

from support.cli import ROOT
from support.cli import run_bake as bake


def test_every_command_is_built_and_documented_in_the_readme():
    files = {f.stem for f in (ROOT / "bake" / "commands").glob("*.py")} - {"__init__", "_common", "context"}
    # A command's module is its name with '_' for '-' (iam-policy is iam_policy.py).
    assert files == {n.replace("-", "_") for n in cli.COMMANDS}, "a module of bake/commands/ is not wired into the CLI"
    assert all(module.__name__ == f"bake.commands.{name.replace('-', '_')}" for name, module in cli.COMMANDS.items())
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `([\w-]+)", readme, flags=re.MULTILINE)
    for name in cli.commands():
        assert name in table, f"README's command table does not document `{name}`"


def test_the_sandbox_plugs_its_command_in_through_the_entry_point():
    # The product lists no sandbox; the installed distribution's entry point adds it.
    assert "sandbox" not in cli.COMMANDS
    assert cli.commands()["sandbox"].__name__ == "bake_sandbox.command"


def test_help_lists_commands_and_exit_codes():
    r = bake("--help")
    assert r.returncode == 0
    for name in ("build", "plan", "rollback", "sandbox"):
        assert name in r.stdout
    assert "130 interrupted" in r.stdout


def test_usage_error_exits_2():
    r = bake("build", "--no-such-flag")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


def test_config_errors_exit_2_with_the_file_named(tmp_path):
    cfg = tmp_path / "bake.toml"
    cfg.write_text('[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\nruntim = "docker"\n')
    r = bake("build", "--config", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}: pools.cpu: unknown key 'runtim' (did you mean 'runtime'?)" in r.stderr
    assert not (tmp_path / "amis.lock.json").exists()
    r = bake("plan", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_build_and_plan_refuse_an_unknown_rollout_key(tmp_path):
    # The rollout tables are part of the file `bake build` validates: a key the stack would
    # refuse fails here, before anything is resolved or launched, not later at synthesis.
    # (A misspelling: the key itself may become valid, the test must not change meaning then.)
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\n'
                   '[pools.cpu.asg]\nsubnet_ids = ["subnet-a"]\n'
                   "[pools.cpu.launch_template]\nvolume_initialisation_rate = 400\n")
    for command in ("build", "plan"):
        r = bake(command, "--config", str(cfg))
        assert r.returncode == 2, (command, r.stderr)
        assert f"{cfg}: pools.cpu.launch_template: unknown key 'volume_initialisation_rate'" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "amis.lock.json").exists()
    cfg.write_text(cfg.read_text().replace("volume_initialisation_rate = 400", "root_volume_sise = 40"))
    r = bake("plan", "--config", str(cfg))
    assert r.returncode == 2
    assert "pools.cpu.launch_template: unknown key 'root_volume_sise' (did you mean 'root_volume_size'?)" in r.stderr


@pytest.mark.parametrize("table,says", [
    ('regions = ["eu-west-9"]', "pools.cpu.distribute.regions: 'eu-west-9' is not an AWS Region"),
    ('regions = ["eu-west-1"]\nkms_key_ids = { us-west-2 = "alias/ami" }',
     "pools.cpu.distribute: kms_key_ids names 'us-west-2', which is not in regions"),
    ('accounts = ["1234"]', "pools.cpu.distribute.accounts: '1234' is not an AWS account id"),
    ('organizational_units = ["ou-ab12-cdef3456"]', "pools.cpu.distribute.organizational_units: 'ou-ab12-cdef3456'"),
])
def test_build_and_plan_refuse_a_bad_distribute_table(tmp_path, table, says):
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\n'
                   f"[pools.cpu.distribute]\n{table}\n")
    for command in ("build", "plan"):
        r = bake(command, "--config", str(cfg))
        assert r.returncode == 2, (command, r.stderr)
        assert f"{cfg}: {says}" in r.stderr, r.stderr
    assert not (tmp_path / "amis.lock.json").exists()


def test_a_bare_command_prints_help_and_launches_nothing(tmp_path):
    # Before issue 20 a bare `python -m bake` (or one with only options) was `build`: it
    # launched instances. Now it prints the command list and exits 2, reading no file.
    (tmp_path / "bake.toml").write_text("this is not toml [")
    r = bake(cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "COMMAND" in r.stderr and all(n in r.stderr for n in cli.commands()), r.stderr
    r = bake("--config", str(tmp_path / "bake.toml"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("usage: python -m bake"), r.stderr  # no longer `build --config`


def test_version():
    from bake import __version__

    r = bake("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"python -m bake {__version__}", r.stdout


def test_reporters_mask_registered_secrets():
    secret = "123456789012-auth-token"
    for cls in (JsonReporter, PlainReporter):
        out = io.StringIO()
        rep = cls(out)
        rep.add_secret(secret)
        rep.emit("image", f"pull failed: 401 for AWS:{secret}", pool="cpu", data={"detail": f"token {secret}"})
        text = out.getvalue()
        assert secret not in text and "***" in text


def test_json_events_are_one_object_per_line():
    out = io.StringIO()
    rep = JsonReporter(out)
    rep.emit("pool.start", "baking", pool="cpu", status="started", data={"run_id": "r"})
    rep.emit("image", "pulled", pool="cpu", image="python:3", status="done")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["kind"] for e in events] == ["pool.start", "image"]
    assert events[1]["image"] == "python:3" and events[0]["data"] == {"run_id": "r"}


def test_live_display_shows_a_row_per_pool_and_per_image():
    from bake.progress import LiveReporter

    out = io.StringIO()
    rep = LiveReporter(out)
    rep.add_secret("s3cr3t-token")
    rep.emit("pool.start", "baking 2 image(s)", pool="cpu")
    rep.emit("image", "pulling", pool="cpu", image="quay.io/org/env:rev9")
    rep.emit("image", "pulled in 1.0s", pool="cpu", image="quay.io/org/env:rev9")
    rep.emit("pool.done", "baked ami-0123 with s3cr3t-token", pool="cpu")
    rep.emit("pool.skip", "skipped: up to date", pool="gpu")
    rep.close()
    text = out.getvalue()
    assert "cpu" in text and "gpu" in text and "quay.io/org/env:rev9" in text
    assert "pulled in 1.0s" in text and "skipped: up to date" in text
    assert "s3cr3t-token" not in text
