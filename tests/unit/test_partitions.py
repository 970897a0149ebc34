"""The AWS partition of a Region: botocore's on the AMI side (bake.partitions), a small table on
the side that never imports botocore (bake.model.regions), and the ARNs iam-policy prints."""

from __future__ import annotations

import json
import re

import pytest
from botocore.loaders import create_loader

from bake.model import regions as model
from bake import partitions

from support.cli import run_bake

BOTOCORE = create_loader().load_data("partitions")["partitions"]
LISTED = sorted({(r, p["id"]) for p in BOTOCORE for r in p["regions"] if not r.endswith("-global")})


def test_botocore_knows_the_partitions_a_config_may_name():
    assert {"aws", "aws-us-gov", "aws-cn", "aws-iso", "aws-iso-b"} <= set(partitions.names())


@pytest.mark.parametrize("region, partition", LISTED)
def test_every_listed_region_is_in_botocores_partition_on_both_sides(region, partition):
    assert partitions.partition_of(region) == partition
    assert model.partition_of(region) == partition


def test_the_model_table_is_botocores_patterns():
    # The same partitions, each with botocore's own pattern (anchors and escapes aside), so a
    # Region AWS opens later is placed alike on both sides.
    table = dict(model.PARTITIONS)
    theirs = {p["id"]: p["regionRegex"].strip("^$").replace("\\-", "-") for p in BOTOCORE}
    assert table == theirs
    assert model.PARTITIONS[-1][0] == "aws"  # its pattern also matches us-gov-* and us-iso-*


@pytest.mark.parametrize("region", ["us-gov-east-9", "cn-south-7", "us-isob-north-3", "ap-east-9"])
def test_unlisted_regions_follow_the_patterns_alike(region):
    assert partitions.partition_of(region) == model.partition_of(region) != ""


CONFIG = """
region = "{region}"

[provider]
allowed_account_ids = ["111122223333"]

[state]
backend = "s3"
bucket = "tf-state"
key = "nodepools.tfstate"

[pools.cpu]
base_ami = "ssm:/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
images = ["111122223333.dkr.ecr.{region}.amazonaws.com{suffix}/team/env:rev3"]
subnet_id = "subnet-0abc"
iam_instance_profile = "builder-profile"
[pools.cpu.distribute]
ssm_parameter = "/team/cpu/ami"
[pools.cpu.asg]
subnet_ids = ["subnet-0abc"]
"""


@pytest.mark.parametrize("region, partition, suffix", [
    ("us-gov-west-1", "aws-us-gov", ""), ("cn-north-1", "aws-cn", ".cn"), ("eu-west-1", "aws", ""),
])
@pytest.mark.parametrize("role", ["bake", "deploy", "plan"])
def test_iam_policy_arns_name_the_configs_partition(tmp_path, region, partition, suffix, role):
    cfg = tmp_path / "bake.toml"
    cfg.write_text(CONFIG.format(region=region, suffix=suffix))
    r = run_bake("iam-policy", "--role", role, "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    arns = re.findall(r'"(arn:[^"]*)"', r.stdout)
    assert arns, r.stdout  # the policy is scoped: it names resources
    assert {a.split(":")[1] for a in arns} == {partition}, sorted({a.split(":")[1] for a in arns})
    json.loads(r.stdout)
