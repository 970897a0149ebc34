"""The constructs, synthesized in-process with cdktf's Testing API: every launch mode.

The provider bindings take 8-25 s to import, so one session fixture (``synth``, from
tests/support/stacks.py through tests/rollout/conftest.py) builds a few stacks and every test
reads from it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from support.stacks import FIRST_START, USER_DATA


def _has(synth: str, resource_type: str, props: dict[str, Any]) -> None:
    from cdktf import Testing

    assert Testing.to_have_resource_with_properties(synth, resource_type, props), (resource_type, props)


def test_launch_template_mode(synth: dict[str, str]) -> None:
    from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup
    from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate

    s = synth["main"]
    _has(s, LaunchTemplate.TF_RESOURCE_TYPE, {
        "name_prefix": "general-",
        "image_id": "ami-0new0000000000001",
        "instance_type": "m6i.large",
        "vpc_security_group_ids": ["sg-0aaa", "sg-0bbb"],
        "iam_instance_profile": {"name": "eks-nodes"},
        "user_data": base64.b64encode(USER_DATA.encode()).decode(),
        "key_name": "ops",
        "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled", "http_put_response_hop_limit": 1},
        "block_device_mappings": [{"device_name": "/dev/xvda", "ebs": {
            "volume_size": 80, "volume_type": "gp3", "encrypted": "true", "delete_on_termination": "true"}}],
        "tag_specifications": [{"resource_type": "instance", "tags": {"bake:pool": "x", "team": "a"}},
                               {"resource_type": "volume", "tags": {"bake:pool": "x", "team": "a"}}],
        "update_default_version": True,
    })
    _has(s, AutoscalingGroup.TF_RESOURCE_TYPE, {
        "name": "general",
        "min_size": 2, "max_size": 10, "desired_capacity": 3,
        "vpc_zone_identifier": ["subnet-a", "subnet-b"],
        "launch_template": {"id": "${aws_launch_template.general.id}",
                            "version": "${aws_launch_template.general.latest_version}"},
        "lifecycle": {"ignore_changes": ["desired_capacity"]},
        "tag": [{"key": "bake:pool", "value": "general", "propagate_at_launch": True},
                {"key": "k8s.io/cluster-autoscaler/enabled", "value": "true", "propagate_at_launch": True}],
    })
    general = json.loads(s)["resource"]["aws_autoscaling_group"]["general"]
    assert "instance_refresh" not in general and "launch_configuration" not in general


def test_instance_refresh_and_profile_arn(synth: dict[str, str]) -> None:
    from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup
    from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate

    s = synth["main"]
    _has(s, AutoscalingGroup.TF_RESOURCE_TYPE, {
        "name": "rolling",
        "availability_zones": ["us-east-1a"],
        "instance_refresh": {"strategy": "Rolling", "preferences": {
            "min_healthy_percentage": 75, "instance_warmup": "300", "checkpoint_percentages": [20, 100],
            "checkpoint_delay": "900", "auto_rollback": True, "skip_matching": True}},
    })
    _has(s, LaunchTemplate.TF_RESOURCE_TYPE, {
        "image_id": "ami-0new0000000000002",
        "iam_instance_profile": {"arn": "arn:aws:iam::123456789012:instance-profile/nodes"},
    })
    assert "user_data" not in json.loads(s)["resource"]["aws_launch_template"]["rolling"]


def test_launch_configuration_mode(synth: dict[str, str]) -> None:
    from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup
    from cdktf_cdktf_provider_aws.launch_configuration import LaunchConfiguration

    s = synth["main"]
    _has(s, LaunchConfiguration.TF_RESOURCE_TYPE, {
        "name_prefix": "legacy-",
        "image_id": "ami-0new0000000000003",
        "instance_type": "m6i.large",
        "security_groups": ["sg-0aaa", "sg-0bbb"],
        "iam_instance_profile": "eks-nodes",
        "user_data": USER_DATA,
        "metadata_options": {"http_tokens": "required"},
        "root_block_device": {"volume_size": 80, "volume_type": "gp3", "encrypted": True},
        "lifecycle": {"create_before_destroy": True},
    })
    _has(s, AutoscalingGroup.TF_RESOURCE_TYPE, {
        "name": "legacy",
        "launch_configuration": "${aws_launch_configuration.legacy.name}",
        "vpc_zone_identifier": ["subnet-a"],
    })
    assert "launch_template" not in json.loads(s)["resource"]["aws_autoscaling_group"]["legacy"]
    assert "legacy" not in json.loads(s)["resource"]["aws_launch_template"]


def test_nodegroup_mode(synth: dict[str, str]) -> None:
    from cdktf_cdktf_provider_aws.eks_node_group import EksNodeGroup
    from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate

    s = synth["main"]
    # A pool name starting with a digit gets a valid Terraform name: "_1gpu".
    _has(s, EksNodeGroup.TF_RESOURCE_TYPE, {
        "cluster_name": "prod",
        "node_group_name": "1gpu",
        "node_role_arn": "arn:aws:iam::123456789012:role/nodes",
        "subnet_ids": ["subnet-a"],
        "scaling_config": {"min_size": 0, "max_size": 5, "desired_size": 1},
        "update_config": {"max_unavailable": 2},
        "labels": {"gpu": "true"},
        "taint": [{"key": "nvidia.com/gpu", "effect": "NO_SCHEDULE"}],
        "launch_template": {"id": "${aws_launch_template._1gpu.id}",
                            "version": "${aws_launch_template._1gpu.latest_version}"},
        "lifecycle": {"ignore_changes": ["scaling_config[0].desired_size"]},
    })
    _has(s, LaunchTemplate.TF_RESOURCE_TYPE, {"image_id": "ami-0new0000000000004",
                                              "metadata_options": {"http_tokens": "required"}})
    lt = json.loads(s)["resource"]["aws_launch_template"]["_1gpu"]
    assert "iam_instance_profile" not in lt, "EKS rejects an instance profile in a node group's template"
    assert "ami_type" not in json.loads(s)["resource"]["aws_eks_node_group"]["_1gpu"]


def test_stable_addresses(synth: dict[str, str]) -> None:
    res = json.loads(synth["main"])["resource"]
    assert set(res["aws_launch_template"]) == {"general", "rolling", "_1gpu"}
    assert set(res["aws_autoscaling_group"]) == {"general", "rolling", "legacy"}
    assert set(res["aws_launch_configuration"]) == {"legacy"}
    assert set(res["aws_eks_node_group"]) == {"_1gpu"}


def test_provider_has_region_and_tags_but_no_endpoints(synth: dict[str, str]) -> None:
    (provider,) = json.loads(synth["main"])["provider"]["aws"]
    assert provider == {"region": "eu-west-1", "default_tags": [{"tags": {"owner": "infra"}}]}


def test_backends(synth: dict[str, str]) -> None:
    s3 = json.loads(synth["s3"])["terraform"]["backend"]
    assert s3 == {"s3": {"bucket": "tfstate", "key": "nodepools.tfstate", "region": "eu-west-1",
                         "dynamodb_table": "locks", "encrypt": True, "use_lockfile": True}}
    local = json.loads(synth["local"])["terraform"]["backend"]
    assert local == {"local": {"path": "../../../terraform.nodepools.tfstate"}}


def test_first_start_rate_and_fast_snapshot_restore(synth: dict[str, str]) -> None:
    doc = json.loads(synth["first_start"])["resource"]
    bdms = doc["aws_launch_template"]["fast"]["block_device_mappings"]
    rates = {b["device_name"]: b["ebs"].get("volume_initialization_rate") for b in bdms}
    assert rates == {"/dev/xvda": 250, "/dev/xvdb": 250, "/dev/xvdc": None}  # not on an empty volume
    fsr = doc["aws_ebs_fast_snapshot_restore"]
    assert {(r["snapshot_id"], r["availability_zone"]) for r in fsr.values()} == {
        (s, z) for s in FIRST_START.snapshot_ids for z in FIRST_START.fast_snapshot_restore_zones}
    assert "fast_snap-0root0000000000001_eu-west-1a" in fsr  # the address names pool, snapshot and zone
    assert "aws_ebs_fast_snapshot_restore" not in json.loads(synth["main"])["resource"]
