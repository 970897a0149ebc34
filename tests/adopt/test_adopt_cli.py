"""``python -m bake adopt`` as a user runs it, against the sandbox's moto: what it writes, and the
refusals (exit 2, the config byte-identical, no user data file left)."""

from __future__ import annotations

import base64
import tomllib
from pathlib import Path

import pytest
import tomlkit
from support.cli import run_bake
from legacy_groups import PRE_EXISTING, USER_DATA, make_legacy_group

from bake.model.config import load_config

pytestmark = [pytest.mark.sandbox]


def config(tmp_path: Path, text: str = PRE_EXISTING) -> Path:
    path = tmp_path / "bake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_adopt_writes_the_pool_and_keeps_the_file(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"ng-{unique}")
    cfg = config(tmp_path)
    r = run_bake("adopt", g["name"], "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    text = cfg.read_text()
    assert text.startswith(PRE_EXISTING), "the file's existing content and comments are kept as they were"
    raw = tomllib.loads(text)
    pool = raw["pools"][g["name"]]
    assert pool["base_ami"] == sandbox.info.base_ami  # the launch configuration's AMI, concrete
    assert f"the AMI of launch configuration {g['launch_configuration']}" in text
    assert pool["images"] == [] and "FILL IN" in text
    assert pool["launch"] == "template"
    assert pool["launch_template"] == {
        "instance_type": "t3.large",
        "security_group_ids": [g["security_group"]],
        "user_data_file": f"userdata/{g['name']}.txt",
        "device_name": "/dev/xvda",
        "root_volume_size": 60,
        "root_volume_type": "gp3",
        "http_put_response_hop_limit": 2,
        "detailed_monitoring": False,
        "block_devices": [{"device_name": "/dev/xvdb", "volume_size": 100, "volume_type": "gp3",
                           "delete_on_termination": True}],
    }
    assert (tmp_path / "userdata" / f"{g['name']}.txt").read_bytes() == USER_DATA
    asg = pool["asg"]
    assert asg == {
        "name": g["name"], "min_size": 0, "max_size": 4, "desired_capacity": 0,
        "subnet_ids": g["subnets"],
        "tags": {"team": "ml", "kubernetes.io/cluster/prod": "owned"},
        "group_tags": {"cost-center": "42"},
        "health_check_type": "EC2", "health_check_grace_period": 120, "default_cooldown": 240,
        "capacity_rebalance": False, "termination_policies": ["OldestLaunchConfiguration", "Default"],
        "protect_from_scale_in": False,
    }
    adopt = pool["adopt"]
    assert adopt["asg_name"] == g["name"]
    assert adopt["source"] == "launch_configuration"
    assert adopt["launch_configuration"] == g["launch_configuration"]
    assert adopt["source_ami"] == sandbox.info.base_ami
    assert adopt["adopted_at"].endswith("Z")
    assert "fill in" in r.stdout and "python -m bake build --pool" in r.stdout


def test_adopt_with_images_and_a_launch_template_source(sandbox, tmp_path: Path, unique: str) -> None:
    ec2, asg = sandbox.client("ec2"), sandbox.client("autoscaling")
    name = f"lt-{unique}"
    lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": sandbox.info.base_ami, "InstanceType": "m5.large"})["LaunchTemplate"]
    ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], LaunchTemplateData={
        "ImageId": sandbox.info.base_ami, "InstanceType": "m5.xlarge", "KeyName": "ops",
        "IamInstanceProfile": {"Name": "eks-node"},
        "UserData": base64.b64encode(USER_DATA).decode(),
        "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 1}})
    # No instances: moto would launch them with a key pair and a profile that do not exist.
    asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=2, AvailabilityZones=["us-east-1a"],
                                  LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "2"})
    cfg = config(tmp_path)
    image = sandbox.info.images[0]
    r = run_bake("adopt", name, "--pool", "gpu-less", "--launch", "configuration", "--image", image,
                 "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "IMDSv1" in r.stdout, "a setting not copied as is is reported"
    pool = tomllib.loads(cfg.read_text())["pools"]["gpu-less"]
    assert pool["images"] == [image]
    assert pool["launch"] == "configuration"
    assert pool["instance_type"] == "m5.xlarge"
    assert pool["launch_template"]["key_name"] == "ops"
    assert pool["launch_template"]["iam_instance_profile"] == "eks-node"
    assert pool["launch_template"]["http_put_response_hop_limit"] == 1
    assert pool["asg"]["availability_zones"] == ["us-east-1a"] and "subnet_ids" not in pool["asg"]
    assert pool["adopt"]["source"] == "launch_template"
    assert pool["adopt"]["launch_template_id"] == lt["LaunchTemplateId"]
    assert pool["adopt"]["launch_template_version"] == "2"
    assert (tmp_path / "userdata" / "gpu-less.txt").read_bytes() == USER_DATA
    # With images the config is complete: both sides load it.
    loaded = load_config(cfg)
    rollout = loaded.rollout_of("gpu-less")
    assert rollout.adopt is not None and rollout.asg is not None and rollout.asg.name == name


def _refused(cfg: Path, *args: str) -> str:
    before = cfg.read_bytes()
    listing = sorted(p.name for p in cfg.parent.iterdir())
    r = run_bake("adopt", *args, "--config", str(cfg))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert cfg.read_bytes() == before, "the config must stay byte-identical"
    assert sorted(p.name for p in cfg.parent.iterdir()) == listing, "nothing else written either"
    return r.stderr


def test_unknown_group_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    err = _refused(config(tmp_path), f"no-such-{unique}")
    assert f"no-such-{unique}" in err and "does not exist" in err


def test_mixed_instances_group_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    ec2, asg = sandbox.client("ec2"), sandbox.client("autoscaling")
    name = f"mixed-{unique}"
    lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": sandbox.info.base_ami, "InstanceType": "m5.large"})["LaunchTemplate"]
    asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=2, AvailabilityZones=["us-east-1a"],
                                  MixedInstancesPolicy={
                                      "LaunchTemplate": {
                                          "LaunchTemplateSpecification": {"LaunchTemplateId": lt["LaunchTemplateId"]},
                                          "Overrides": [{"InstanceType": "m5.large"}, {"InstanceType": "m5a.large"}]}})
    err = _refused(config(tmp_path), name)
    assert "mixed instances policy" in err


def test_already_adopted_group_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"twice-{unique}")
    cfg = config(tmp_path)
    assert run_bake("adopt", g["name"], "--config", str(cfg)).returncode == 0
    err = _refused(cfg, g["name"], "--pool", "another")
    assert "already adopted by pool" in err


def test_group_managed_by_a_pool_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"managed-{unique}")
    cfg = config(tmp_path, PRE_EXISTING + f'\n[pools.web]\nbase_ami = "ami-ekslinux"\nimages = ["docker.io/library/nginx:1.27"]\n'
                                          f'[pools.web.asg]\nname = "{g["name"]}"\navailability_zones = ["us-east-1a"]\n')
    err = _refused(cfg, g["name"])
    assert "already managed by pool 'web'" in err


def test_taken_pool_name_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"taken-{unique}")
    err = _refused(config(tmp_path), g["name"], "--pool", "existing")
    assert "pool 'existing' already exists" in err


def test_pool_name_defaults_to_the_group_name_made_valid(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"Upper_Case.{unique}")
    cfg = config(tmp_path)
    assert run_bake("adopt", g["name"], "--config", str(cfg)).returncode == 0
    pool = tomllib.loads(cfg.read_text())["pools"][f"upper_case-{unique}"]
    assert pool["asg"]["name"] == pool["adopt"]["asg_name"] == g["name"]


def test_invalid_pool_name_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"bad-{unique}")
    err = _refused(config(tmp_path), g["name"], "--pool", "Bad.Name")
    assert "--pool 'Bad.Name'" in err


def test_binary_user_data_is_refused(sandbox, tmp_path: Path, unique: str) -> None:
    ec2, asg = sandbox.client("ec2"), sandbox.client("autoscaling")
    name = f"gz-{unique}"
    lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": sandbox.info.base_ami, "InstanceType": "m5.large",
        "UserData": base64.b64encode(b"\x1f\x8b\x08\x00\xff\xfe").decode()})["LaunchTemplate"]
    asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1, AvailabilityZones=["us-east-1a"],
                                  LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"]})
    err = _refused(config(tmp_path), name)
    assert "not UTF-8" in err


def test_adopt_creates_a_missing_config_and_keeps_tomlkit_round_trip(sandbox, tmp_path: Path, unique: str) -> None:
    g = make_legacy_group(sandbox, f"fresh-{unique}")
    cfg = tmp_path / "new" / "bake.toml"
    cfg.parent.mkdir()
    r = run_bake("adopt", g["name"], "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    doc = tomlkit.parse(cfg.read_text())
    assert list(doc["pools"]) == [g["name"]]
