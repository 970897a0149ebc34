"""bake.toml's rollout keys: validation messages, defaults from the AMI side, main.py's errors."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from support.terraform import PYTHON, ROOT, base_env

from bake.errors import ConfigError
from bake.model.config import load_config
from bake.model.lock import ImageDigest, LockData, LockEntry, PoolLock
from nodepools.props import MissingAmiError, stack_props

HEAD = """
region = "us-east-1"
[defaults]
base_ami = "ami-0123456789abcdef0"
images = ["docker.io/library/nginx:1.27"]
"""


def cfg(tmp_path: Path, body: str):  # noqa: ANN201
    p = tmp_path / "bake.toml"
    p.write_text(HEAD + textwrap.dedent(body))
    return load_config(p)


def err(tmp_path: Path, body: str) -> str:
    """The error of loading the file, or else of the stack's own requirements (a region, each
    pool's rollout settings)."""
    with pytest.raises(ConfigError) as e:
        c = cfg(tmp_path, body)
        c.stack_region()
        for name in c.pools:
            c.rollout_of(name)
    return str(e.value)


def entry(ami: str, region: str = "us-east-1") -> LockEntry:
    return LockEntry(ami_id=ami, region=region, fingerprint="f", base_ami="ami-0123456789abcdef0",
                     images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "0" * 64)],
                     built_at="2025-01-01T00:00:00Z")


@pytest.mark.parametrize("body, expected", [
    ("[pools.a.asg]\nmin_size = 1\nmax_size = 2\nsubnet_ids = ['s']\nmin_sise = 1\n", "pools.a.asg: unknown key 'min_sise'"),
    ("[pools.a.asg]\nsubnet_ids = ['s']\n[pools.a.asg.instance_refresh]\nmin_healthy_percent = 90\n",
     "pools.a.asg.instance_refresh: unknown key 'min_healthy_percent' (did you mean 'min_healthy_percentage'?)"),
    ("[pools.a.launch_template]\n[[pools.a.launch_template.block_devices]]\ndevice_nam = 'x'\n[pools.a.asg]\nsubnet_ids = ['s']\n",
     "pools.a.launch_template.block_devices.0: unknown key 'device_nam' (did you mean 'device_name'?)"),
    ("[defaults.asg]\nmax_size = 'two'\nsubnet_ids = ['s']\n[pools.a]\n", "defaults.asg.max_size"),
    ("[pools.a.asg]\nmin_size = 3\nmax_size = 2\nsubnet_ids = ['s']\n", "pools.a.asg: min_size 3 is above max_size 2"),
    ("[pools.a.asg]\nmax_size = 2\n", "pools.a.asg: set exactly one of subnet_ids or availability_zones"),
    ("[pools.a.asg]\nmax_size = 'two'\nsubnet_ids = ['s']\n", "pools.a.asg.max_size"),
    ("[pools.a]\nlaunch = 'lc'\n", "pools.a.launch"),
    ("[pools.a]\nlaunch = 'nodegroup'\n", "pools.a: launch = \"nodegroup\" needs a [nodegroup] table"),
    ("[pools.a.nodegroup]\ncluster_name = 'c'\nsubnet_ids = ['s']\n[pools.a]\nlaunch = 'nodegroup'\n",
     "pools.a.nodegroup: missing required key 'node_role_arn'"),
    ("[pools.a]\n[pools.a.launch_template]\nuser_data = 'x'\nuser_data_file = 'y'\n",
     "pools.a.launch_template: set user_data or user_data_file, not both"),
    ("[pools.a.asg]\nsubnet_ids = ['s']\n[pools.a.asg.instance_refresh]\ncheckpoint_percentages = [50, 20]\n",
     "pools.a.asg.instance_refresh.checkpoint_percentages"),
    ("[pools.a]\n", "pools.a: no rollout settings"),
    ("[state]\nbackend = 's3'\nbucket = 'b'\n[pools.a.asg]\nsubnet_ids = ['s']\n", "state: backend = \"s3\" needs key"),
    ("[provider]\nendpoints = { ec2 = 'x' }\n[pools.a.asg]\nsubnet_ids = ['s']\n", "provider: unknown key 'endpoints'"),
])
def test_errors_name_file_pool_and_key(tmp_path: Path, body: str, expected: str) -> None:
    msg = err(tmp_path, body)
    assert str(tmp_path / "bake.toml") in msg
    assert expected in msg, msg


def test_ami_side_keys_are_the_defaults(tmp_path: Path) -> None:
    c = cfg(tmp_path, """
        [pools.a]
        instance_type = "c6i.xlarge"
        root_volume_size = 60
        security_group_ids = ["sg-1"]
        iam_instance_profile = "nodes"
        tags = { team = "x" }
        [pools.a.asg]
        availability_zones = ["us-east-1a"]
        [pools.b]
        iam_instance_profile = "nodes"
        [pools.b.asg]
        availability_zones = ["us-east-1a"]
        [pools.b.launch_template]
        instance_type = "t3.small"
        iam_instance_profile = "other"
        security_group_ids = []
        tags = { extra = "1" }
        [pools.skip]
        launch = "none"
    """)
    lock = LockData(pools={"a": PoolLock(current=entry("ami-aaaaaaaa")), "b": PoolLock(current=entry("ami-bbbbbbbb"))})
    props = stack_props(c, lock, {})
    a, b = props.pools  # "skip" is baked but not rolled out
    assert (a.instance.instance_type, a.instance.root_volume_size, a.instance.security_group_ids,
            a.instance.iam_instance_profile, a.ami_id) == ("c6i.xlarge", 60, ("sg-1",), "nodes", "ami-aaaaaaaa")
    assert a.instance.tags == {"team": "x", "bake:pool": "a"}
    assert (b.instance.instance_type, b.instance.iam_instance_profile, b.instance.security_group_ids) == ("t3.small", "other", ())
    assert b.instance.tags == {"bake:pool": "b", "extra": "1"}
    # Whatever the builder ran with, nodes state gp3's baseline (docs/aws-rules.md); and the hop
    # limit keeps pods off the node's role (docs/rollout.md, "Instance metadata").
    assert (a.instance.root_volume_type, a.instance.root_volume_iops, a.instance.root_volume_throughput) == ("gp3", 3000, 125)
    assert a.instance.http_put_response_hop_limit == 1


def test_a_root_volume_other_than_gp3_states_no_iops_or_throughput(tmp_path: Path) -> None:
    c = cfg(tmp_path, """
        [pools.a]
        [pools.a.asg]
        availability_zones = ["us-east-1a"]
        [pools.a.launch_template]
        root_volume_type = "gp2"
    """)
    (a,) = stack_props(c, LockData(pools={"a": PoolLock(current=entry("ami-aaaaaaaa"))}), {}).pools
    assert (a.instance.root_volume_type, a.instance.root_volume_iops, a.instance.root_volume_throughput) == ("gp2", None, None)


def test_missing_lock_entry_and_wrong_region(tmp_path: Path) -> None:
    c = cfg(tmp_path, "[pools.a.asg]\nsubnet_ids = ['s']\n[pools.b.asg]\nsubnet_ids = ['s']\n")
    with pytest.raises(MissingAmiError, match=r"'b'.*python -m bake build --pool b"):
        stack_props(c, LockData(pools={"a": PoolLock(current=entry("ami-aaaaaaaa"))}), {})
    lock = LockData(pools={"a": PoolLock(current=entry("ami-aaaaaaaa")), "b": PoolLock(current=entry("ami-bbbbbbbb", "eu-west-1"))})
    with pytest.raises(MissingAmiError, match="eu-west-1"):
        stack_props(c, lock, {})


def test_fast_snapshot_restore_refuses_a_copy(tmp_path: Path) -> None:
    """Nodes in the stack's region launching a copy (the entry was baked elsewhere): the lock has
    only the original's snapshots, so fast snapshot restore on them would be the wrong ones."""
    c = cfg(tmp_path, "[pools.a.asg]\nsubnet_ids = ['s']\n[pools.a.fast_snapshot_restore]\n"
                      "availability_zones = ['us-east-1a']\n")
    baked = entry("ami-aaaaaaaa", "eu-west-1").model_copy(
        update={"copies": {"us-east-1": "ami-cccccccc"}, "snapshot_ids": ["snap-0123456789abcdef0"]})
    with pytest.raises(MissingAmiError, match=r"'a': fast_snapshot_restore .* a copy of ami-aaaaaaaa"):
        stack_props(c, LockData(pools={"a": PoolLock(current=baked)}), {})
    here = baked.model_copy(update={"region": "us-east-1", "copies": None})
    (props,) = stack_props(c, LockData(pools={"a": PoolLock(current=here)}), {}).pools
    assert (props.ami_id, props.snapshot_ids, props.fast_snapshot_restore_zones) == (
        "ami-aaaaaaaa", ("snap-0123456789abcdef0",), ("us-east-1a",))


def test_region_is_required(tmp_path: Path) -> None:
    p = tmp_path / "bake.toml"
    p.write_text(HEAD.replace('region = "us-east-1"', "") + "[pools.a.asg]\nsubnet_ids = ['s']\n")
    c = load_config(p)
    c.rollout_of("a")
    with pytest.raises(ConfigError, match="region"):
        c.stack_region()


def _main(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bake.toml").write_text(HEAD + textwrap.dedent(body))
    return subprocess.run([PYTHON, str(ROOT / "main.py")], cwd=tmp_path, env=base_env(),
                          capture_output=True, text=True, timeout=120)


def test_main_py_fails_without_a_lock_entry_naming_the_command(tmp_path: Path) -> None:
    p = _main(tmp_path, "[pools.gpu.asg]\navailability_zones = ['us-east-1a']\n")
    assert p.returncode == 2
    assert "pool 'gpu'" in p.stderr or "'gpu'" in p.stderr
    assert "python -m bake build --pool gpu" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "cdktf.out").exists()


def test_main_py_reports_config_errors_and_unreadable_user_data(tmp_path: Path) -> None:
    p = _main(tmp_path, "[pools.gpu.asg]\navailability_zones = ['us-east-1a']\nmax_szie = 1\n")
    assert p.returncode == 2 and "pools.gpu.asg: unknown key 'max_szie'" in p.stderr and "Traceback" not in p.stderr
    p = _main(tmp_path, "[pools.gpu.asg]\navailability_zones = ['a']\n[pools.gpu.launch_template]\nuser_data_file = 'no.yaml'\n")
    assert p.returncode == 2 and "user_data_file: cannot read" in p.stderr and "Traceback" not in p.stderr
