"""Live groups made the old way (boto3) in the sandbox's moto, for the ``bake adopt`` tests.

A uniquely named module: ``from conftest import`` finds whichever conftest was loaded last.
"""

from __future__ import annotations

import uuid

# Bytes a user data file must keep exactly: a CRLF, a tab, non-ASCII, no trailing newline.
USER_DATA = b"#!/bin/bash\r\nset -e\n/etc/eks/bootstrap.sh prod --kubelet-extra-args '--node-labels=team=ml'\t# caf\xc3\xa9\necho done"

PRE_EXISTING = """\
# Node pools of the prod cluster (a comment adopt must keep)
region = "us-east-1"

[defaults]
ssh_cidrs = ["127.0.0.1/32"]

[pools.existing]  # a pool adopt must keep as it is
base_ami = "ami-ekslinux"
images = ["docker.io/library/nginx:1.27"]
launch = "none"
"""


def default_subnets(ec2) -> list[str]:  # noqa: ANN001
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return [s["SubnetId"] for s in sorted(subnets, key=lambda s: s["AvailabilityZone"])][:2]


def make_legacy_group(sandbox, name: str, *, user_data: bytes = USER_DATA) -> dict:  # noqa: ANN001
    """A pool made the old way: a launch configuration from the sandbox's base AMI with user
    data, and an ASG on it with tags (one not propagated) in two default-VPC subnets."""
    asg, ec2 = sandbox.client("autoscaling"), sandbox.client("ec2")
    lc = f"{name}-lc-{uuid.uuid4().hex[:6]}"
    sg = ec2.create_security_group(GroupName=f"{name}-nodes-{uuid.uuid4().hex[:6]}", Description="nodes")["GroupId"]
    asg.create_launch_configuration(
        LaunchConfigurationName=lc, ImageId=sandbox.info.base_ami, InstanceType="t3.large",
        UserData=user_data.decode("utf-8"), SecurityGroups=[sg],
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 60, "VolumeType": "gp3"}},
                             {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 100, "VolumeType": "gp3",
                                                                 "DeleteOnTermination": True}}],
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
        InstanceMonitoring={"Enabled": False},
    )
    subnets = default_subnets(ec2)
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchConfigurationName=lc, MinSize=0, MaxSize=4, DesiredCapacity=0,
        VPCZoneIdentifier=",".join(subnets), HealthCheckType="EC2", HealthCheckGracePeriod=120,
        DefaultCooldown=240, TerminationPolicies=["OldestLaunchConfiguration", "Default"],
        Tags=[{"Key": "team", "Value": "ml", "PropagateAtLaunch": True},
              {"Key": "kubernetes.io/cluster/prod", "Value": "owned", "PropagateAtLaunch": True},
              {"Key": "cost-center", "Value": "42", "PropagateAtLaunch": False}],
    )
    return {"name": name, "launch_configuration": lc, "security_group": sg, "subnets": subnets}


def describe_group(sandbox, name: str) -> dict:  # noqa: ANN001
    return sandbox.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
