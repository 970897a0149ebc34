"""Where a pool's base AMI comes from: an id, an SSM parameter, or an ASG's active launch
configuration / launch template version (the manual procedure's step 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bake import resources, tags
from bake.aws import images
from bake.aws.asg import LaunchSourceError, launch_source
from bake.errors import UsageError


def resolve_base_ami(spec: str, pool: str, client: Callable[[str], Any]) -> dict[str, Any]:
    """The DescribeImages entry of the AMI ``spec`` names (its id is ``ImageId``): planning and
    the builder's launch read it, so it is asked for once. ``client(service)`` gives a boto3
    client: only the services a spec needs are created (each costs a model load)."""
    ec2 = client("ec2")
    if spec.startswith("ssm:"):
        ssm = client("ssm")
        name = spec[len("ssm:"):]
        try:
            ami = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except Exception as e:
            if resources.is_not_found(e):
                raise UsageError(f"pool {pool}: SSM parameter {name} does not exist (base_ami = {spec!r})") from None
            raise
    elif spec.startswith("asg:"):
        ami = ami_of_asg(spec[len("asg:"):], pool, ec2, client("autoscaling"))
    else:
        ami = spec
    return check_available(ami, pool, spec, ec2)


def check_available(ami: str, pool: str, spec: str, ec2: Any) -> dict[str, Any]:
    image = images.describe(ec2, ami)
    if image is None:
        via = f" (from {spec})" if spec != ami else ""
        raise UsageError(f"pool {pool}: base AMI {ami}{via} does not exist or is not visible to this account")
    if image.state != "available":
        raise UsageError(f"pool {pool}: base AMI {ami} is {image.state or None}, not available")
    return image.data


def ami_of_asg(name: str, pool: str, ec2: Any, autoscaling: Any) -> str:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise UsageError(f"pool {pool}: Auto Scaling group {name} does not exist (base_ami = 'asg:{name}')")
    try:
        source = launch_source(groups[0], autoscaling, ec2)
    except LaunchSourceError as e:
        raise UsageError(f"pool {pool}: {e} (base_ami = 'asg:{name}')") from None
    if not source.ami:
        raise UsageError(f"pool {pool}: the {source.label} of {name} names no AMI")
    return source.ami


def baked_base_warning(pool: Any, ami: str, image: dict[str, Any]) -> str | None:
    """``asg:NAME`` after the first rollout names this tool's own AMI: a bake on it layers the new
    images over the last bake's. Say so, and name the base that AMI was baked on."""
    if not pool.base_ami.startswith("asg:"):
        return None
    found = images.Image(image).tags
    if found.get(tags.KEY_TOOL) != tags.TOOL:
        return None
    origin = found.get(tags.KEY_BASE_AMI)
    instead = (f"the EKS AMI it was baked on, base_ami = {origin!r}, or its SSM parameter" if origin else
               "the EKS AMI's SSM parameter, base_ami = \"ssm:/aws/service/eks/optimized-ami/VERSION/"
               "amazon-linux-2023/x86_64/standard/recommended/image_id\"")
    return (f"pool {pool.name}: base_ami = {pool.base_ami!r} resolves to {ami}, which this tool baked "
            f"(pool {found.get(tags.KEY_POOL, '?')}): the bake would layer its images over that bake's. "
            f"Use {instead}")
