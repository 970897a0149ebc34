"""``base_ami = "asg:NAME"``, the manual procedure's first step, end to end: the AMI of a group
on a launch configuration, and of groups on a launch template at ``$Default``, ``$Latest`` and
an explicit version, each followed by a real bake from it (the lock and the AMI's tags name it)."""

from __future__ import annotations

import json
import uuid

import pytest

from bake import tags
from bake.model.lock import LockFile
from support.cli import run_bake
from support.sandbox_bakes import write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


def stand_in_ami(ec2, name: str) -> str:
    """A distinct AMI in the sandbox's moto, made from its EKS AMI (not tagged as this tool's)."""
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="m5.large")["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return ami


@pytest.fixture(scope="module")
def groups(sandbox):
    """Four groups, each launching a different AMI: which one a pool bakes from shows the rule."""
    ec2, asg = sandbox.client("ec2"), sandbox.client("autoscaling")
    s = uuid.uuid4().hex[:6]
    ami = {k: stand_in_ami(ec2, f"asg-base-{k}-{s}") for k in ("lc", "v1", "v2", "v3")}
    lc = f"asg-base-lc-{s}"
    asg.create_launch_configuration(LaunchConfigurationName=lc, ImageId=ami["lc"], InstanceType="m5.large")
    lt = ec2.create_launch_template(LaunchTemplateName=f"asg-base-lt-{s}",
                                    LaunchTemplateData={"ImageId": ami["v1"]})["LaunchTemplate"]["LaunchTemplateId"]
    for k in ("v2", "v3"):
        ec2.create_launch_template_version(LaunchTemplateId=lt, LaunchTemplateData={"ImageId": ami[k]})
    ec2.modify_launch_template(LaunchTemplateId=lt, DefaultVersion="2")
    names = {"lc": f"asg-base-lc-{s}", "default": f"asg-base-default-{s}", "latest": f"asg-base-latest-{s}",
             "explicit": f"asg-base-explicit-{s}"}
    common = {"MinSize": 0, "MaxSize": 1, "DesiredCapacity": 0, "AvailabilityZones": ["us-east-1a"]}
    asg.create_auto_scaling_group(AutoScalingGroupName=names["lc"], LaunchConfigurationName=lc, **common)
    for key, version in (("default", "$Default"), ("latest", "$Latest"), ("explicit", "1")):
        asg.create_auto_scaling_group(AutoScalingGroupName=names[key], **common,
                                      LaunchTemplate={"LaunchTemplateId": lt, "Version": version})
    # the group on $Default must follow the default version (2), not the first or the latest
    expected = {"lc": ami["lc"], "default": ami["v2"], "latest": ami["v3"], "explicit": ami["v1"]}
    yield names, expected
    for name in names.values():
        asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    asg.delete_launch_configuration(LaunchConfigurationName=lc)
    ec2.delete_launch_template(LaunchTemplateId=lt)


@pytest.fixture(scope="module")
def asg_bake(sandbox, groups, tmp_path_factory):
    names, expected = groups
    d = tmp_path_factory.mktemp("asg-base")
    repo = f"env/asg-base-{uuid.uuid4().hex[:8]}"
    sandbox.push_image(repo, "v1", size_mb=1)
    image = f"{sandbox.info.registry}/{repo}:v1"
    cfg = write_config(d / "bake.toml", sandbox, {
        key: {"base_ami": f"asg:{name}", "images": [image]} for key, name in names.items()})
    plan = run_bake("plan", "--config", str(cfg), "--json")
    build = run_bake("build", "--config", str(cfg), "--json")
    return d, plan, build, expected


def test_plan_resolves_each_group_to_its_active_ami(asg_bake):
    d, plan, build, expected = asg_bake
    assert plan.returncode == 0, plan.stderr
    resolved = {p["pool"]: p["base_ami"] for p in json.loads(plan.stdout)["pools"]}
    assert resolved == expected


def test_each_pool_bakes_from_its_groups_ami(sandbox, ec2, asg_bake):
    d, plan, build, expected = asg_bake
    assert build.returncode == 0, build.stderr
    pools = LockFile(d / "amis.lock.json").read().pools
    assert {name: pools[name].current.base_ami for name in expected} == expected
    for name, base in expected.items():
        image = ec2.describe_images(ImageIds=[pools[name].current.ami_id])["Images"][0]
        assert tags.from_aws(image["Tags"])[tags.KEY_BASE_AMI] == base
    # each builder really started from that AMI
    run = next(e["data"]["run_id"] for e in map(json.loads, build.stdout.splitlines()) if e["kind"] == "pool.start")
    for name, base in expected.items():
        found = ec2.describe_instances(Filters=[{"Name": f"tag:{tags.KEY_RUN}", "Values": [run]},
                                                {"Name": f"tag:{tags.KEY_POOL}", "Values": [name]}])
        assert [i["ImageId"] for r in found["Reservations"] for i in r["Instances"]] == [base]


def test_a_missing_group_is_a_usage_error(sandbox, tmp_path):
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"cpu": {"base_ami": "asg:no-such-group",
                                                                 "images": sandbox.info.images[:1]}})
    r = run_bake("build", "--config", str(cfg))
    assert r.returncode == 2 and "Auto Scaling group no-such-group does not exist" in r.stderr
