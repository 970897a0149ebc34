"""Print which AMI each pool's Auto Scaling group launches now (the demo's last line)."""

from __future__ import annotations

import sys

import boto3

from bake.model.config import load_config


def main(config_path: str) -> None:
    config = load_config(config_path)
    asg = boto3.client("autoscaling", region_name=config.region)
    ec2 = boto3.client("ec2", region_name=config.region)
    for name in config.pools:
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        if not groups:
            print(f"{name}: no Auto Scaling group")
            continue
        g = groups[0]
        if lc := g.get("LaunchConfigurationName"):
            ami = asg.describe_launch_configurations(LaunchConfigurationNames=[lc])["LaunchConfigurations"][0]["ImageId"]
            via = f"launch configuration {lc}"
        else:
            spec = g["LaunchTemplate"]
            v = ec2.describe_launch_template_versions(LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])
            ami = v["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"]
            via = f"launch template {spec['LaunchTemplateId']} v{spec['Version']}"
        print(f"{name}: ASG {g['AutoScalingGroupName']} launches {ami} via {via}")


if __name__ == "__main__":
    main(sys.argv[1])
