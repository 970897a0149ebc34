"""bake.toml validation: every error names the file, the pool and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bake.errors import ConfigError
from bake.model.config import load_config

GOOD = """
region = "us-east-1"

[defaults]
instance_type = "m5.large"

[pools.cpu]
base_ami = "ssm:/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
instance_type = "m5.xlarge"
images = ["quay.io/org/env:rev9", "123456789012.dkr.ecr.us-east-1.amazonaws.com/env:rev3"]
runtime = "containerd"
gpu = false
subnet_id = "subnet-0abc"
ssh_user = "ec2-user"
ssh_host = "public_ip"
pull_concurrency = 4

[pools.gpu]
base_ami = "ami-0123456789abcdef0"
images = ["python:3.12"]
runtime = "docker"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bake.toml"
    p.write_text(text)
    return p


def test_issue_example_loads_with_defaults_applied(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.region == "us-east-1"
    assert cfg.pools["cpu"].instance_type == "m5.xlarge"  # the pool's own value wins
    assert cfg.pools["gpu"].instance_type == "m5.large"  # from [defaults]
    assert cfg.pools["gpu"].runtime == "docker"
    assert cfg.pools["cpu"].pull_concurrency == 4


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ('instance_typ = "m5.large"', r"pools\.cpu: unknown key 'instance_typ' \(did you mean 'instance_type'\?\)"),
        ("pull_concurrency = \"4\"", r"pools\.cpu\.pull_concurrency: .*got '4'"),
        ('runtime = "cri-o"', r"pools\.cpu\.runtime: .*'containerd' or 'docker'"),
        ('ssh_host = "example.com"', r"pools\.cpu\.ssh_host: 'example.com' is not"),
        ('ssh_user = "root; rm -rf /"', r"pools\.cpu\.ssh_user: .*not a valid user name"),
        ('ssh_cidrs = ["10.0.0.0/33"]', r"pools\.cpu\.ssh_cidrs: '10.0.0.0/33' is not a CIDR block"),
        ('aliases = { "python:3.13" = ["m.example/python"] }',
         r"pools\.cpu\.aliases: 'python:3.13' is not one of this pool's images \(did you mean 'python:3.12'\?\)"),
        ('aliases = { "python:3.12" = ["m.example/python@sha256:' + "a" * 64 + '"] }',
         r"pools\.cpu\.aliases: alias 'm.example/python@sha256:a+' of 'python:3.12': no digest"),
        ('aliases = { "python:3.12" = ["M.example/Python"] }', r"pools\.cpu.*invalid image reference 'M.example/Python'"),
        ('ecr_regional_aliases = "yes"', r"pools\.cpu\.ecr_regional_aliases: .*got 'yes'"),
    ],
)
def test_bad_keys_name_file_pool_and_key(tmp_path, snippet, expected):
    text = f"""
[pools.cpu]
base_ami = "ami-0123456789abcdef0"
images = ["python:3.12"]
{snippet}
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_shell_metacharacters_in_image_reference_rejected(tmp_path):
    path = write(tmp_path, '[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["x; touch /tmp/pwned"]\n')
    with pytest.raises(ConfigError, match=r"pools\.cpu\.images.*invalid image reference 'x; touch /tmp/pwned'.*';'"):
        load_config(path)


def test_missing_required_key(tmp_path):
    path = write(tmp_path, '[pools.cpu]\nimages = ["python"]\n')
    with pytest.raises(ConfigError, match=r"pools\.cpu: missing required key 'base_ami'"):
        load_config(path)


def test_bad_default_is_reported_in_defaults(tmp_path):
    path = write(tmp_path, '[defaults]\nruntime = "podman"\n[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\n')
    with pytest.raises(ConfigError, match=r"defaults\.runtime"):
        load_config(path)


def test_unknown_top_level_key_and_no_pools(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'pool' \(did you mean 'pools'\?\)"):
        load_config(write(tmp_path, '[pool.cpu]\nimages = ["x"]\n'))
    with pytest.raises(ConfigError, match="no pools"):
        load_config(write(tmp_path, 'region = "us-east-1"\n'))


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[pools.cpu\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_tunnel_requires_cidrs(tmp_path):
    path = write(tmp_path, '[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\nssh_host = "127.0.0.1:2222"\n')
    with pytest.raises(ConfigError, match="ssh_cidrs"):
        load_config(path)
    path.write_text(path.read_text() + 'ssh_cidrs = ["127.0.0.1/32"]\n')
    assert load_config(path).pools["cpu"].ssh_endpoint == ("127.0.0.1", 2222)


def test_select_unknown_pool_suggests(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match=r"no pool named 'cpus' \(did you mean 'cpu'\?\)"):
        cfg.select(["cpus"])
    assert [p.name for p in cfg.select(None)] == ["cpu", "gpu"]


def test_aliases_and_the_regional_switch_load(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace('pull_concurrency = 4', (
        'pull_concurrency = 4\n'
        'aliases = { "quay.io/org/env:rev9" = ["mirror.example.com/org/env", "cache:5000/env:stable"] }\n'
        'ecr_regional_aliases = true'))))
    pool = cfg.pools["cpu"]
    assert pool.aliases == {"quay.io/org/env:rev9": ["mirror.example.com/org/env", "cache:5000/env:stable"]}
    assert pool.ecr_regional_aliases is True
    assert cfg.pools["gpu"].aliases == {} and cfg.pools["gpu"].ecr_regional_aliases is False
