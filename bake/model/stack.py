"""What the rollout stack names, known to both sides: the stack's id, each pool's Terraform
addresses and the tag that says which pool a resource belongs to.

The constructs (``constructs/nodepools/``) give their resources these ids; ``bake review`` ties
a plan's resources to pools by the same addresses. Renaming anything here is a destroy and
create of every pool in the next plan.
"""

from __future__ import annotations

import re

STACK_ID = "nodepools"
# On everything a bake creates and on every launch template, group and instance of the stack.
POOL_TAG = "bake:pool"

# The resource types a pool's construct creates (by launch mode), each named logical_id(pool).
LAUNCH_TEMPLATE = "aws_launch_template"
LAUNCH_CONFIGURATION = "aws_launch_configuration"
AUTOSCALING_GROUP = "aws_autoscaling_group"
EKS_NODE_GROUP = "aws_eks_node_group"
POOL_RESOURCE_TYPES = (LAUNCH_TEMPLATE, LAUNCH_CONFIGURATION, AUTOSCALING_GROUP, EKS_NODE_GROUP)
# One per snapshot of the pool's current AMI and zone, named fsr_logical_id(pool, snapshot, zone).
EBS_FAST_SNAPSHOT_RESTORE = "aws_ebs_fast_snapshot_restore"
# [distribute] ssm_parameter: one per region, named ssm_logical_id(pool, region).
SSM_PARAMETER = "aws_ssm_parameter"

_TF_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def logical_id(pool: str) -> str:
    """The Terraform resource name for a pool (names may start with a digit; HCL's may not)."""
    return pool if _TF_NAME.match(pool) else f"_{pool}"


def fsr_logical_id(pool: str, snapshot_id: str, zone: str) -> str:
    """One name per snapshot and zone: a rebake's new snapshots are new addresses (created) and
    the old ones' addresses disappear (destroyed), in the same plan."""
    return f"{logical_id(pool)}_{snapshot_id}_{zone}"


def ssm_logical_id(pool: str, region: str) -> str:
    """The Terraform name of ``pool``'s SSM parameter in ``region`` (``cpu_eu-west-1``)."""
    return f"{logical_id(pool)}_{region}"


def address(resource_type: str, pool: str) -> str:
    """``aws_autoscaling_group.cpu``: where the stack keeps ``pool``'s resource of that type."""
    return f"{resource_type}.{logical_id(pool)}"


def pool_addresses(pools: list[str] | set[str]) -> dict[str, str]:
    """``{address: pool}`` for every resource the stack can hold for these pools."""
    return {address(t, p): p for p in pools for t in POOL_RESOURCE_TYPES}
