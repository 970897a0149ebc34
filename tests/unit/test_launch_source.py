"""An Auto Scaling group's launch source (bake.aws.asg.launch_source), as ``base_ami = "asg:NAME"``
and ``bake adopt`` both read it: in-process moto (tests/e2e/test_asg_base_ami.py and tests/adopt
run the same paths against the sandbox)."""

from __future__ import annotations

import boto3
import pytest

from bake.adopt import AdoptError, _read_source
from bake.aws.asg import LaunchSourceError, launch_source
from bake.base_ami import ami_of_asg
from bake.errors import UsageError


def _group(autoscaling, name: str, **source) -> dict:  # noqa: ANN001
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=1,
                                          AvailabilityZones=["us-east-1a"], **source)
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def test_a_configuration_or_the_named_template_version_is_the_source(in_process_ec2):
    ec2, autoscaling = in_process_ec2, boto3.client("autoscaling", region_name="us-east-1")
    autoscaling.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-ekslinux", InstanceType="t3.micro")
    lc = launch_source(_group(autoscaling, "by-lc", LaunchConfigurationName="lc"), autoscaling, ec2)
    assert (lc.kind, lc.ami, lc.label) == ("launch_configuration", "ami-ekslinux", "launch configuration lc")

    other = ec2.describe_images(Owners=["amazon"])["Images"][1]["ImageId"]
    data = {"ImageId": "ami-ekslinux", "InstanceType": "t3.micro"}
    lt = ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData=data)
    lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=lt_id, LaunchTemplateData={"ImageId": other, "InstanceType": "t3.micro"})
    pinned = _group(autoscaling, "by-lt-1", LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "1"})
    latest = _group(autoscaling, "by-lt-2", LaunchTemplate={"LaunchTemplateName": "nodes", "Version": "2"})
    assert launch_source(pinned, autoscaling, ec2).ami == "ami-ekslinux"
    source = launch_source(latest, autoscaling, ec2)
    assert (source.kind, source.ami, source.label) == ("launch_template", other, f"launch template {lt_id} version 2")
    # Both callers read it: asg: names the same AMI adopt records as the source.
    assert ami_of_asg("by-lt-2", "p", ec2, autoscaling) == _read_source(latest, autoscaling, ec2).ami == other


def test_a_group_without_a_source_is_one_error_each_caller_words_for_itself(in_process_ec2):
    ec2, autoscaling = in_process_ec2, boto3.client("autoscaling", region_name="us-east-1")
    bare = {"AutoScalingGroupName": "bare"}  # AWS always names one; a test double need not
    with pytest.raises(LaunchSourceError, match="'bare' has no launch configuration or launch template"):
        launch_source(bare, autoscaling, ec2)
    with pytest.raises(AdoptError, match="has no launch configuration"):
        _read_source(bare, autoscaling, ec2)
    gone = {"AutoScalingGroupName": "g", "LaunchConfigurationName": "no-such-lc"}
    with pytest.raises(LaunchSourceError, match="launch configuration 'no-such-lc' of 'g' does not exist"):
        launch_source(gone, autoscaling, ec2)
    with pytest.raises(UsageError, match="Auto Scaling group nope does not exist"):
        ami_of_asg("nope", "p", ec2, autoscaling)
