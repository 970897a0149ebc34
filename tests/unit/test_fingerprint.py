"""What makes a rebake: the base AMI, the runtime, a GPU pool's settings and each image's
digest change the fingerprint; the builder's own settings do not."""

from __future__ import annotations

import pytest

from bake.fingerprint import pool_fingerprint
from bake.model.config import GpuSettings, PoolConfig

IMAGES = [("quay.io/org/env:rev9", "sha256:" + "1" * 64), ("python:3.12", "sha256:" + "2" * 64)]


def pool(**kw) -> PoolConfig:
    return PoolConfig(**{"name": "cpu", "base_ami": "ssm:/aws/service/eks/x", "images": [r for r, _ in IMAGES], **kw})


BASE = pool_fingerprint(pool(), "ami-0aaa", IMAGES)


@pytest.mark.parametrize("kw", [
    {"instance_type": "m5.4xlarge"}, {"subnet_id": "subnet-0abc"}, {"ssh_user": "ubuntu"},
    {"ssh_host": "private_ip"}, {"ssh_cidrs": ["10.0.0.0/8"]}, {"ssh_timeout": 30}, {"host_key_policy": "tofu"},
    {"pull_concurrency": 16}, {"pull_retries": 0}, {"ami_timeout": 60}, {"security_group_ids": ["sg-0abc"]},
    {"iam_instance_profile": "builder"}, {"tags": {"team": "ml"}},
    {"base_ami": "asg:nodes"},  # how the base AMI is named: only the AMI it resolves to counts
    # a pool without a GPU ignores its GPU settings
    {"gpu_settings": GpuSettings(min_driver_version=535)},
], ids=lambda kw: next(iter(kw)))
def test_builder_settings_do_not_change_it(kw):
    assert pool_fingerprint(pool(**kw), "ami-0aaa", IMAGES) == BASE


def test_the_image_order_does_not_change_it():
    assert pool_fingerprint(pool(), "ami-0aaa", list(reversed(IMAGES))) == BASE


def test_the_resolved_base_ami_changes_it():
    assert pool_fingerprint(pool(), "ami-0bbb", IMAGES) != BASE


def test_the_runtime_changes_it():
    assert pool_fingerprint(pool(runtime="docker"), "ami-0aaa", IMAGES) != BASE


@pytest.mark.parametrize("i", range(len(IMAGES)))
def test_each_digest_changes_it(i):
    moved = list(IMAGES)
    moved[i] = (IMAGES[i][0], "sha256:" + "9" * 64)
    assert pool_fingerprint(pool(), "ami-0aaa", moved) != BASE


def test_gpu_and_each_gpu_setting_change_it():
    gpu = pool_fingerprint(pool(gpu=True, instance_type="g4dn.xlarge"), "ami-0aaa", IMAGES)
    assert gpu != BASE
    changed = {"min_driver_version": 535, "validate_image": "nvidia/cuda:12.6.0-base-ubuntu22.04",
               "validate_command": "nvidia-smi -L", "nvidia_smi": "/opt/bin/nvidia-smi",
               "runtime_path": "/opt/bin/nvidia-container-runtime", "nvidia_ctk": "",
               "restart_command": "systemctl restart containerd", "validate_run": "true {image}"}
    assert set(changed) == set(GpuSettings.model_fields), "a new GPU setting: decide whether it makes a rebake"
    for key, value in changed.items():
        other = pool_fingerprint(pool(gpu=True, instance_type="g4dn.xlarge", gpu_settings=GpuSettings(**{key: value})), "ami-0aaa", IMAGES)
        assert other != gpu, key
