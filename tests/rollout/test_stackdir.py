"""nodepools.stackdir on its own: the backend hint's cases and the mirror condition of the lock."""

from __future__ import annotations

import json
from pathlib import Path

from nodepools import stackdir, tfenv


def stack(tmp_path: Path, synthesized: dict, initialised: dict | None) -> Path:
    (tmp_path / "cdk.tf.json").write_text(json.dumps({"terraform": {"backend": synthesized}}))
    if initialised is not None:
        (tmp_path / ".terraform").mkdir()
        (tmp_path / ".terraform" / "terraform.tfstate").write_text(json.dumps({"version": 3, "backend": initialised}))
    return tmp_path


def test_no_hint_before_the_first_init(tmp_path):
    assert stackdir.backend_hint(stack(tmp_path, {"local": {"path": "a.tfstate"}}, None)) is None


def test_no_hint_for_the_backend_it_was_initialised_for(tmp_path):
    d = stack(tmp_path, {"local": {"path": "a.tfstate"}},
              {"type": "local", "config": {"path": "a.tfstate", "workspace_dir": None}, "hash": 1})
    assert stackdir.backend_hint(d) is None


def test_another_state_path_gets_the_reconfigure_hint(tmp_path):
    d = stack(tmp_path, {"local": {"path": "b.tfstate"}}, {"type": "local", "config": {"path": "a.tfstate"}})
    hint = stackdir.backend_hint(d)
    assert "local: path=a.tfstate; now local: path=b.tfstate" in hint
    assert f"terraform -chdir={d} init -reconfigure" in hint and "init -migrate-state" in hint


def test_local_to_s3_names_both(tmp_path):
    d = stack(tmp_path, {"s3": {"bucket": "tf", "key": "k", "region": "us-east-1"}},
              {"type": "local", "config": {"path": "a.tfstate"}})
    assert "(local: path=a.tfstate; now s3: bucket=tf, key=k, region=us-east-1)" in stackdir.backend_hint(d)


def test_the_lock_is_written_only_with_the_projects_mirror(tmp_path):
    (tmp_path / "cdk.tf.json").write_text("{}")
    elsewhere = {"TF_CLI_CONFIG_FILE": str(tmp_path / "their.tfrc"), "PATH": "/usr/bin:/usr/local/bin"}
    assert stackdir.lock_providers(tmp_path, elsewhere) is False
    assert not (tmp_path / stackdir.LOCK_FILE).exists()
    assert tfenv.uses_mirror({"TF_CLI_CONFIG_FILE": str(tfenv.CLI_CONFIG)}) is tfenv.MIRROR.is_dir()
