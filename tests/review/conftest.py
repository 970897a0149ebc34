"""A moto server and a real Terraform workspace against it, for the review tests.

The workspace is applied once per module with AMI A and planned twice: each test reads those
real `terraform show -json` plans. Terraform uses the provider mirror under /opt/tf-plugins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from bake_sandbox.private_moto import private_moto_server
import requests

PLUGIN_MIRROR = Path(os.environ.get("BAKE_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
CLI_CONFIG = f"""provider_installation {{
  filesystem_mirror {{
    path    = "{PLUGIN_MIRROR}"
    include = ["registry.terraform.io/*/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"""


@pytest.fixture(scope="session")
def moto_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


def _terraform() -> str:
    tf = shutil.which("terraform") or "/usr/local/bin/terraform"
    if not Path(tf).exists():  # a missing component fails, it never skips
        raise RuntimeError("terraform is not installed (expected on PATH or at /usr/local/bin/terraform)")
    if not PLUGIN_MIRROR.is_dir():
        raise RuntimeError(f"the AWS provider mirror {PLUGIN_MIRROR} is missing")
    return tf


def stack(pool_lt: str = "general", pool_lc: str = "batch") -> dict:
    """An LT + ASG for one pool (the ASG's address does not name the pool: the review must
    follow its reference to the LT) and a launch configuration for another pool."""
    lt = f"nodepool-{pool_lt}_lt"
    return {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}},
        "provider": {"aws": {"region": "us-east-1"}},
        "variable": {
            "general_ami": {"type": "string"},
            "batch_ami": {"type": "string"},
            "refresh": {"type": "bool", "default": False},
        },
        "resource": {
            "aws_launch_template": {lt: {"name_prefix": "lt-", "image_id": "${var.general_ami}", "instance_type": "m5.large"}},
            "aws_autoscaling_group": {"workers_asg": {
                "name": "workers", "min_size": 0, "max_size": 1, "desired_capacity": 0,
                "availability_zones": ["us-east-1a"],
                "launch_template": {"id": f"${{aws_launch_template.{lt}.id}}",
                                    "version": f"${{aws_launch_template.{lt}.latest_version}}"},
                "dynamic": {"instance_refresh": {"for_each": "${var.refresh ? [1] : []}",
                                                 "content": {"strategy": "Rolling"}}},
            }},
            "aws_launch_configuration": {f"nodepool-{pool_lc}_lc": {
                "name_prefix": "lc-", "image_id": "${var.batch_ami}", "instance_type": "m5.large",
                "lifecycle": {"create_before_destroy": True},
            }},
        },
    }


@pytest.fixture(scope="module")
def workspace(moto_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Applied with general=A, batch=C; plans: `b` (general A->B) and `refresh` (general A->B,
    batch C->D, instance refresh on)."""
    tf = _terraform()
    requests.post(f"{moto_server_url}/moto-api/reset", timeout=10).raise_for_status()
    d = tmp_path_factory.mktemp("tf")
    (d / "cli.tfrc").write_text(CLI_CONFIG)
    (d / "main.tf.json").write_text(json.dumps(stack(), indent=2))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))},
        "TF_CLI_CONFIG_FILE": str(d / "cli.tfrc"), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1",
        "AWS_ENDPOINT_URL": moto_server_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    inst = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    a, b, c, dd = (ec2.create_image(InstanceId=inst, Name=f"review-{n}")["ImageId"] for n in "abcd")

    def tf_run(*args: str) -> str:
        r = subprocess.run([tf, *args], cwd=d, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r.stdout

    tf_run("init", "-no-color")
    tf_run("apply", "-auto-approve", "-no-color", f"-var=general_ami={a}", f"-var=batch_ami={c}")
    tf_run("plan", "-no-color", "-out=b.tfplan", f"-var=general_ami={b}", f"-var=batch_ami={c}")
    (d / "plan-b.json").write_text(tf_run("show", "-json", "b.tfplan"))
    tf_run("plan", "-no-color", "-out=refresh.tfplan", f"-var=general_ami={b}", f"-var=batch_ami={dd}", "-var=refresh=true")
    (d / "plan-refresh.json").write_text(tf_run("show", "-json", "refresh.tfplan"))
    return SimpleNamespace(dir=d, a=a, b=b, c=c, d=dd, plan_b=d / "plan-b.json", plan_refresh=d / "plan-refresh.json")
