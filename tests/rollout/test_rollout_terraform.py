"""Rollout and rollback as real Terraform plans and applies against a moto server.

One project holds two pools: ``web`` (launch template + ASG) and ``legacy`` (launch
configuration + ASG). The flow, run once by a module fixture: bake (boto3 AMIs in moto, lock
entries), synth with ``python main.py``, init, apply; rebake (new AMIs in the lock), plan, apply;
``python -m bake rollback`` both pools, plan, apply. The tests then read the recorded plans and
what boto3 saw after each apply. Instance refresh stays off here (moto lacks StartInstanceRefresh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.ci import unavailable
from support.terraform import (
    IMAGE, ROOT, Moto, Project, asg_image, bake_ami, base_env, changes, needs_terraform, record, steady,
)

from bake.model.lock import LockFile

pytestmark = [
    pytest.mark.terraform,
    needs_terraform(),
]



def asg_settings(moto: Moto, name: str) -> dict[str, Any]:
    return moto.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def node_volumes(moto: Moto) -> dict[str, Any]:
    """What a node of each pool gets for its root volume: the web template's mapping, the volumes
    of the instance its group launched, and the legacy launch configuration's mapping."""
    ec2, autoscaling = moto.client("ec2"), moto.client("autoscaling")
    web = asg_settings(moto, "web")
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=web["LaunchTemplate"]["LaunchTemplateId"], Versions=[web["LaunchTemplate"]["Version"]],
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    instances = [i["InstanceId"] for i in web["Instances"]]
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": instances}])["Volumes"]
    lc = autoscaling.describe_launch_configurations(
        LaunchConfigurationNames=[asg_settings(moto, "legacy")["LaunchConfigurationName"]])["LaunchConfigurations"][0]
    return {"template": version["BlockDeviceMappings"], "instances": instances, "volumes": volumes,
            "configuration": lc["BlockDeviceMappings"]}


@pytest.fixture(scope="module")
def flow(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    moto = moto_server
    ec2 = moto.client("ec2")
    subnet = next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == "us-east-1a")
    p = Project(dir=tmp_path_factory.mktemp("rollout"), env=dict(moto.env))
    p.write_config(f"""
        region = "us-east-1"

        [defaults]
        base_ami = "ami-ekslinux"
        images = ["{IMAGE}"]
        instance_type = "t3.medium"

        [pools.web]
        tags = {{ team = "web" }}
        [pools.web.asg]
        min_size = 1
        max_size = 2
        desired_capacity = 1
        availability_zones = ["us-east-1a"]
        [pools.web.launch_template]
        user_data = "[settings.kubernetes]\\ncluster-name = \\"c1\\"\\n"
        root_volume_size = 40

        [pools.legacy]
        launch = "configuration"
        [pools.legacy.asg]
        min_size = 1
        max_size = 1
        subnet_ids = ["{subnet}"]
        [pools.legacy.launch_template]
        root_volume_size = 30
    """)
    amis = {pool: [bake_ami(moto, f"{pool}-{i}") for i in (1, 2)] for pool in ("web", "legacy")}
    out: dict[str, Any] = {"project": p, "amis": amis}

    for pool in amis:
        record(p.lock, pool, amis[pool][0], f"{pool}-fp1", "2025-01-01T00:00:00Z")
    out["plan_create"] = p.roll_out(first=True)
    out["synth"] = p.synthesized()
    out["after_create"] = {pool: asg_image(moto, pool) for pool in amis}
    out["node_volumes"] = node_volumes(moto)

    # A rebake: new AMIs become current.
    for pool in amis:
        record(p.lock, pool, amis[pool][1], f"{pool}-fp2", "2025-02-01T00:00:00Z")
    out["plan_rebake"] = p.roll_out()
    out["after_rebake"] = {pool: asg_image(moto, pool) for pool in amis}
    out["web_asg_after_rebake"] = asg_settings(moto, "web")

    # The rollback, as a user runs it.
    out["rollback_runs"] = {pool: p.bake("rollback", pool, check=False) for pool in amis}
    out["lock_after_rollback"] = json.loads(p.lock.read_text())
    out["plan_rollback"] = p.roll_out()
    out["after_rollback"] = {pool: asg_image(moto, pool) for pool in amis}
    out["plan_steady"] = p.plan_json()
    return out


def test_initial_deploy_runs_the_baked_amis(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    acts = {a: c["actions"] for a, c in changes(flow["plan_create"]).items()}
    assert acts == {
        "aws_launch_template.web": ["create"],
        "aws_autoscaling_group.web": ["create"],
        "aws_launch_configuration.legacy": ["create"],
        "aws_autoscaling_group.legacy": ["create"],
    }
    assert flow["after_create"] == {"web": amis["web"][0], "legacy": amis["legacy"][0]}


def test_rebake_is_an_in_place_update_of_the_template_and_asg(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    ch = changes(flow["plan_rebake"])
    lt = ch["aws_launch_template.web"]
    assert lt["actions"] == ["update"]
    assert (lt["before"]["image_id"], lt["after"]["image_id"]) == (amis["web"][0], amis["web"][1])
    assert lt["before"]["metadata_options"][0]["http_tokens"] == "required"
    asg = ch["aws_autoscaling_group.web"]
    assert asg["actions"] == ["update"], "the ASG must be updated in place, never replaced"
    # The version is the template's latest_version: known only after the template's update.
    assert asg["after_unknown"]["launch_template"][0]["version"] is True
    assert asg["before"]["launch_template"][0]["version"] == "1"
    assert flow["after_rebake"]["web"] == amis["web"][1]
    assert flow["web_asg_after_rebake"]["LaunchTemplate"]["Version"] == "2"
    assert not any(c["actions"] in (["delete"], ["delete", "create"], ["create", "delete"])
                   for a, c in ch.items() if a.startswith("aws_autoscaling_group."))


def test_rebake_replaces_a_launch_configuration_create_before_destroy(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    ch = changes(flow["plan_rebake"])
    lc = ch["aws_launch_configuration.legacy"]
    assert lc["actions"] == ["create", "delete"], "create_before_destroy: the new one first"
    assert (lc["before"]["image_id"], lc["after"]["image_id"]) == (amis["legacy"][0], amis["legacy"][1])
    asg = ch["aws_autoscaling_group.legacy"]
    assert asg["actions"] == ["update"]
    assert asg["after_unknown"]["launch_configuration"] is True
    assert flow["after_rebake"]["legacy"] == amis["legacy"][1]


def test_rollback_command_records_and_pins(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    for pool, run in flow["rollback_runs"].items():
        assert run.returncode == 0, run.stderr
        assert f"rolled back from {amis[pool][1]} to {amis[pool][0]}" in run.stdout
        rec = flow["lock_after_rollback"]["pools"][pool]
        assert rec["current"]["ami_id"] == amis[pool][0]
        assert rec["current"]["rolled_back_from"] == amis[pool][1]
        assert rec["history"][0]["ami_id"] == amis[pool][1]
        assert rec["pinned"]["ami_id"] == amis[pool][0]
        assert rec["pinned"]["reason"] == "rollback"
        assert rec["pinned"]["fingerprint"] == f"{pool}-fp2"


def test_rollback_plan_takes_the_ami_back_and_apply_confirms(flow: dict[str, Any]) -> None:
    amis = flow["amis"]
    ch = changes(flow["plan_rollback"])
    lt = ch["aws_launch_template.web"]
    assert lt["actions"] == ["update"]
    assert (lt["before"]["image_id"], lt["after"]["image_id"]) == (amis["web"][1], amis["web"][0])
    assert ch["aws_autoscaling_group.web"]["actions"] == ["update"]
    lc = ch["aws_launch_configuration.legacy"]
    assert lc["actions"] == ["create", "delete"]
    assert lc["after"]["image_id"] == amis["legacy"][0]
    assert ch["aws_autoscaling_group.legacy"]["actions"] == ["update"]
    assert flow["after_rollback"] == {"web": amis["web"][0], "legacy": amis["legacy"][0]}


def test_after_apply_the_plan_is_empty(flow: dict[str, Any]) -> None:
    assert steady(flow["plan_steady"]) == {}


# -- the modes moto cannot fully apply: node group, instance refresh --------------------------

@pytest.fixture(scope="module")
def plan_only(moto_server: Moto, tmp_path_factory: pytest.TempPathFactory) -> Project:
    p = Project(dir=tmp_path_factory.mktemp("plan-only"), env=dict(moto_server.env))
    ec2 = moto_server.client("ec2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    p.write_config(f"""
        region = "us-east-1"
        [defaults]
        base_ami = "ami-ekslinux"
        images = ["{IMAGE}"]

        [pools.refresh]
        [pools.refresh.asg]
        availability_zones = ["us-east-1b"]
        [pools.refresh.asg.instance_refresh]
        min_healthy_percentage = 66
        instance_warmup = 120
        checkpoint_percentages = [50, 100]
        checkpoint_delay = 600
        auto_rollback = true
        skip_matching = true

        [pools.eks]
        launch = "nodegroup"
        [pools.eks.launch_template]
        user_data_file = "nodeadm.yaml"
        [pools.eks.nodegroup]
        cluster_name = "bake-test"
        node_role_arn = "arn:aws:iam::123456789012:role/eks-nodes"
        subnet_ids = {json.dumps(subnets)}
        max_unavailable_percentage = 25
        labels = {{ pool = "eks" }}
    """)
    (p.dir / "nodeadm.yaml").write_text("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n")
    ami = bake_ami(moto_server, "plan-only")
    for pool in ("refresh", "eks"):
        record(p.lock, pool, ami, "fp", "2025-01-01T00:00:00Z")
    p.synth()
    p.init()
    return p


def test_nodegroup_and_refresh_stack_validates(plan_only: Project) -> None:
    out = plan_only.tf("validate", "-json", "-no-color")
    assert json.loads(out.stdout)["valid"] is True


def test_instance_refresh_reaches_the_plan(plan_only: Project) -> None:
    ch = changes(plan_only.plan_json())
    asg = ch["aws_autoscaling_group.refresh"]["after"]
    refresh = asg["instance_refresh"][0]
    assert refresh["strategy"] == "Rolling"
    prefs = refresh["preferences"][0]
    assert prefs["min_healthy_percentage"] == 66
    assert prefs["instance_warmup"] == "120"
    assert prefs["checkpoint_percentages"] == [50, 100]
    assert prefs["checkpoint_delay"] == "600"
    assert prefs["auto_rollback"] is True and prefs["skip_matching"] is True
    ng = ch["aws_eks_node_group.eks"]["after"]
    assert ng["cluster_name"] == "bake-test"
    assert ng["update_config"][0]["max_unavailable_percentage"] == 25
    lt = ch["aws_launch_template.eks"]["after"]
    assert lt["user_data"]  # base64 of nodeadm.yaml
    assert lt["iam_instance_profile"] == []  # EKS uses node_role_arn


NODEGROUP_TARGETS = ["-target=aws_launch_template.eks", "-target=aws_eks_node_group.eks"]


@pytest.fixture(scope="module")
def nodegroup_applied(plan_only: Project, moto_server: Moto) -> dict:
    """moto's EKS: create the cluster with boto3, then apply only the node group's resources."""
    eks = moto_server.client("eks")
    subnets = json.loads(json.dumps(plan_only.synthesized()["resource"]["aws_eks_node_group"]["eks"]["subnet_ids"]))
    eks.create_cluster(name="bake-test", roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    plan_only.tf("apply", "-input=false", "-no-color", "-auto-approve", *NODEGROUP_TARGETS, timeout=300)
    return eks.describe_nodegroup(clusterName="bake-test", nodegroupName="eks")["nodegroup"]


def template_ami(moto: Moto, spec: dict, version: str) -> str:
    which = {"LaunchTemplateId": spec["id"]} if spec.get("id") else {"LaunchTemplateName": spec["name"]}
    found = moto.client("ec2").describe_launch_template_versions(**which, Versions=[version])
    return found["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"]


def test_nodegroup_apply_against_moto(plan_only: Project, moto_server: Moto, nodegroup_applied: dict) -> None:
    ng = nodegroup_applied
    assert ng["launchTemplate"]["version"] == "1"
    assert ng["scalingConfig"]["minSize"] == 1
    ami = LockFile(plan_only.lock).read().pools["eks"].current.ami_id
    assert template_ami(moto_server, ng["launchTemplate"], "1") == ami, "the node group launches the baked AMI"


def test_nodegroup_rebake_moves_the_template_version(plan_only: Project, moto_server: Moto,
                                                     nodegroup_applied: dict) -> None:
    """A rebake plans the template's image_id in place and moves the node group to the
    template's next version. moto's node group reports an SSH key (remote_access
    "eksKeypair") it was never given, so against moto terraform replaces the node group for
    that drift alone; on AWS the same change is an in-place update. The test fails on any
    other reason to replace it."""
    first = LockFile(plan_only.lock).read().pools["eks"].current.ami_id
    second = bake_ami(moto_server, "plan-only-rebake")
    record(plan_only.lock, "eks", second, "fp2", "2025-02-01T00:00:00Z")
    plan_only.synth()
    plan = plan_only.plan_json()
    ch = changes(plan)
    lt, ng = ch["aws_launch_template.eks"], ch["aws_eks_node_group.eks"]
    assert lt["actions"] == ["update"] and (lt["before"]["image_id"], lt["after"]["image_id"]) == (first, second)
    assert ng["before"]["remote_access"] == [{"ec2_ssh_key": "eksKeypair", "source_security_group_ids": []}]
    assert ng["after"]["remote_access"] == [], "the stack sets no SSH access: the key is moto's"
    replace_paths = ng.get("replace_paths") or []
    assert all(path[0] == "remote_access" for path in replace_paths), replace_paths
    assert ng["before"]["launch_template"][0]["version"] == "1"
    assert ng["after_unknown"]["launch_template"][0]["version"] is True  # the template's next version
    plan_only.tf("apply", "-input=false", "-no-color", "-auto-approve", *NODEGROUP_TARGETS, timeout=300)
    moto_ng = moto_server.client("eks").describe_nodegroup(clusterName="bake-test", nodegroupName="eks")["nodegroup"]
    assert moto_ng["launchTemplate"]["version"] == "2"
    assert template_ami(moto_server, moto_ng["launchTemplate"], "2") == second


def test_cdktf_cli_synth_matches_main_py(plan_only: Project) -> None:
    """`cdktf synth` runs cdktf.json's app; its output is the same stack. Skipped only outside CI."""
    cdktf = shutil.which("cdktf")
    if cdktf is None:
        unavailable("cdktf-cli is not installed (scripts/dev.sh setup installs it: npm i -g cdktf-cli@0.21.0)")
    outdir = plan_only.dir / "cli.out"
    env = base_env({"BAKE_CONFIG": str(plan_only.config), "BAKE_LOCK": str(plan_only.lock)})
    p = subprocess.run([cdktf, "synth", "--output", str(outdir)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    by_cli = json.loads((outdir / "stacks" / "nodepools" / "cdk.tf.json").read_text())
    assert by_cli["resource"] == plan_only.synthesized()["resource"]


def test_a_node_gets_the_pools_baseline_volume_from_the_stack(flow: dict[str, Any]) -> None:
    """The AMI records the builder's volume (CreateImage may not change it, docs/aws-rules.md);
    the stack states the nodes' own: gp3 at its baseline 3000 IOPS and 125 MiB/s, so a mapping that
    overrides the AMI's key by key leaves nothing of the builder's speed."""
    v = flow["node_volumes"]
    root = next(m for m in v["template"] if m["DeviceName"] == "/dev/xvda")["Ebs"]
    assert {k: root.get(k) for k in ("VolumeType", "Iops", "Throughput", "VolumeSize")} == {
        "VolumeType": "gp3", "Iops": 3000, "Throughput": 125, "VolumeSize": 40}
    # A launch configuration's root_block_device maps the AMI's root device (moto's AMI: /dev/sda1).
    assert len(v["configuration"]) == 1, v["configuration"]
    lc_root = v["configuration"][0]["Ebs"]
    assert {k: lc_root.get(k) for k in ("VolumeType", "Iops", "Throughput", "VolumeSize")} == {
        "VolumeType": "gp3", "Iops": 3000, "Throughput": 125, "VolumeSize": 30}
    # The node the web group launched from that template: its volume at the template's device
    # (moto shows gp3's default IOPS whatever was asked, so type and size are what it can prove;
    # moto's AMI maps its root at /dev/sda1, EKS's AMIs at /dev/xvda, so moto adds that one too).
    assert len(v["instances"]) == 1
    at = {a["Device"]: (vol["VolumeType"], vol["Size"]) for vol in v["volumes"] for a in vol["Attachments"]}
    assert at["/dev/xvda"] == ("gp3", 40), at
