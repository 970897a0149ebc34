"""The rollout side's tables in ``bake.toml``: how each pool's AMI reaches its nodes.

``PoolRollout`` is a pool's ``launch``, ``asg``, ``launch_template``, ``nodegroup`` and ``adopt``
keys (``PoolConfig.rollout``); ``StateSettings`` and ``ProviderSettings`` are the top-level
``[state]`` and ``[provider]`` tables (``BakeConfig.state``/``.provider``). ``load_config``
validates them with the rest of the file, in one pass: ``bake build`` refuses a bad rollout key
before anything launches, and the stack takes these models as they are.

A new rollout key is one field on its table's class here; a new pool table is one field on
``PoolRollout`` (its keys are the pool keys the config accepts).

Pure data: no cdktf, no boto3, no file reads (``user_data_file`` is read by ``main.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bake.model.base import Strict, suggest
from bake.model.regions import REGIONS

VolumeType = Literal["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"]
Count = Annotated[int, Field(ge=0, le=10000)]
Percent = Annotated[int, Field(ge=0, le=100)]


class InstanceRefresh(Strict):
    """``[pools.NAME.asg.instance_refresh]``: replace instances when the launch template changes."""

    strategy: Literal["Rolling"] = "Rolling"
    min_healthy_percentage: Percent = 90
    max_healthy_percentage: Annotated[int, Field(ge=100, le=200)] | None = None
    instance_warmup: Annotated[int, Field(ge=0)] | None = None
    checkpoint_percentages: list[Annotated[int, Field(ge=1, le=100)]] = []
    checkpoint_delay: Annotated[int, Field(ge=0)] | None = None
    auto_rollback: bool = False
    skip_matching: bool = False
    # Extra properties whose change also triggers a refresh (a template change always does).
    triggers: list[str] = []

    @field_validator("checkpoint_percentages")
    @classmethod
    def _ascending(cls, v: list[int]) -> list[int]:
        if v != sorted(set(v)):
            raise ValueError("checkpoint percentages must be strictly ascending")
        if v and v[-1] != 100:
            raise ValueError("the last checkpoint percentage must be 100")
        return v


class AsgSettings(Strict):
    """``[pools.NAME.asg]``: the Auto Scaling group (template and configuration modes)."""

    name: str | None = None  # default: the pool's name
    min_size: Count = 1
    max_size: Count = 1
    # The initial size; afterwards the autoscaler owns it (ignore_changes).
    desired_capacity: Count | None = None
    subnet_ids: list[str] = []
    availability_zones: list[str] = []
    tags: dict[str, str] = {}
    health_check_type: Literal["EC2", "ELB"] = "EC2"
    health_check_grace_period: Annotated[int, Field(ge=0)] = 300
    default_cooldown: Annotated[int, Field(ge=0)] | None = None
    capacity_rebalance: bool | None = None
    termination_policies: list[str] = []
    target_group_arns: list[str] = []
    max_instance_lifetime: Annotated[int, Field(ge=0)] | None = None
    protect_from_scale_in: bool = False
    wait_for_capacity_timeout: str | None = None
    instance_refresh: InstanceRefresh | None = None
    # Tags on the group only (propagate_at_launch = false); ``tags`` are propagated to instances.
    group_tags: dict[str, str] = {}
    suspended_processes: list[str] = []
    enabled_metrics: list[str] = []
    metrics_granularity: str | None = None
    placement_group: str | None = None
    default_instance_warmup: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _sizes(self) -> AsgSettings:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} is above max_size {self.max_size}")
        d = self.desired_capacity
        if d is not None and not self.min_size <= d <= self.max_size:
            raise ValueError(f"desired_capacity {d} is outside min_size..max_size ({self.min_size}..{self.max_size})")
        if bool(self.subnet_ids) == bool(self.availability_zones):
            raise ValueError("set exactly one of subnet_ids or availability_zones")
        if both := sorted(set(self.tags) & set(self.group_tags)):
            raise ValueError(f"tag {both[0]!r} is in both tags and group_tags")
        return self


class BlockDevice(Strict):
    """``[[pools.NAME.launch_template.block_devices]]``: an EBS volume besides the root one."""

    device_name: str
    volume_size: Annotated[int, Field(ge=1, le=16384)] | None = None
    volume_type: VolumeType | None = None
    iops: Annotated[int, Field(ge=1)] | None = None
    throughput: Annotated[int, Field(ge=1)] | None = None
    encrypted: bool | None = None
    snapshot_id: str | None = None
    delete_on_termination: bool = True


class LaunchTemplateSettings(Strict):
    """``[pools.NAME.launch_template]``: the instances' settings (every launch mode reads it)."""

    instance_type: str | None = None  # default: the pool's instance_type
    security_group_ids: list[str] | None = None  # default: the pool's security_group_ids
    iam_instance_profile: str | None = None  # a name or an ARN; default: the pool's
    user_data: str | None = None  # passed through as is (nodeadm / bootstrap.sh config)
    user_data_file: str | None = None  # relative to bake.toml; main.py reads it
    key_name: str | None = None
    root_volume_size: Annotated[int, Field(ge=1, le=16384)] | None = None  # default: the pool's
    root_volume_type: VolumeType | None = None  # default: the pool's
    root_volume_encrypted: bool | None = None
    device_name: str = "/dev/xvda"
    block_devices: list[BlockDevice] = []  # further EBS volumes (the root one is above)
    # 1: only the node itself (and host-network pods) reach IMDS; other pods get AWS credentials
    # through EKS Pod Identity or IRSA, as EKS's security best practices advise (docs/rollout.md,
    # "Instance metadata"). Set 2 for a pool whose pods still need the node's role through IMDS.
    http_put_response_hop_limit: Annotated[int, Field(ge=1, le=64)] = 1
    detailed_monitoring: bool | None = None
    tags: dict[str, str] = {}
    # MiB/s at which EBS fills the root volume (and every block device made from a snapshot) from
    # the AMI's snapshot: AWS's provisioned rate, 100-300, billed per volume (docs/first-start.md).
    volume_initialization_rate: Annotated[int, Field(ge=100, le=300)] | None = None

    @model_validator(mode="after")
    def _one_user_data(self) -> LaunchTemplateSettings:
        if self.user_data is not None and self.user_data_file is not None:
            raise ValueError("set user_data or user_data_file, not both")
        return self

    def user_data_path(self, config_path: Path) -> Path | None:
        """Where ``user_data_file`` points, relative to bake.toml's folder (read by the caller)."""
        if self.user_data_file is None:
            return None
        p = Path(self.user_data_file)
        return p if p.is_absolute() else config_path.parent / p

AZ_NAME = re.compile(r"^(?P<region>[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+)(-[a-z]{3}-\d+)?[a-z]$")


class FastSnapshotRestore(Strict):
    """``[pools.NAME.fast_snapshot_restore]``: EBS fast snapshot restore on every snapshot of the
    pool's current AMI in each zone (``aws_ebs_fast_snapshot_restore``; docs/first-start.md)."""

    availability_zones: Annotated[list[str], Field(min_length=1)]

    @field_validator("availability_zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        for zone in v:
            if not AZ_NAME.match(zone):
                raise ValueError(f"{zone!r} is not an availability zone name (like 'us-east-1a')")
        if len(set(v)) != len(v):
            raise ValueError("a zone is listed twice")
        return v

    def outside(self, region: str) -> list[str]:
        """The zones that are not in ``region`` (fast snapshot restore is per region's zone)."""
        return [z for z in self.availability_zones if AZ_NAME.match(z).group("region") != region]  # type: ignore[union-attr]


class Taint(Strict):
    key: str
    value: str | None = None
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]


class NodegroupSettings(Strict):
    """``[pools.NAME.nodegroup]``: an EKS managed node group with the baked AMI."""

    cluster_name: str
    node_role_arn: str
    subnet_ids: Annotated[list[str], Field(min_length=1)]
    node_group_name: str | None = None  # default: the pool's name
    min_size: Count = 1
    max_size: Count = 1
    desired_size: Count | None = None
    max_unavailable: Annotated[int, Field(ge=1)] | None = None
    max_unavailable_percentage: Annotated[int, Field(ge=1, le=100)] | None = None
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    labels: dict[str, str] = {}
    taints: list[Taint] = []
    force_update_version: bool = False
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> NodegroupSettings:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size {self.min_size} is above max_size {self.max_size}")
        d = self.desired_size
        if d is not None and not self.min_size <= d <= self.max_size:
            raise ValueError(f"desired_size {d} is outside min_size..max_size ({self.min_size}..{self.max_size})")
        if self.max_unavailable is not None and self.max_unavailable_percentage is not None:
            raise ValueError("set max_unavailable or max_unavailable_percentage, not both")
        return self


class Adopt(Strict):
    """``[pools.NAME.adopt]``, written by ``python -m bake adopt``: the live Auto Scaling group
    this pool took over. The stack imports the group (a Terraform import block: a no-op once it
    is in the state) and switches it to the pool's own launch template or configuration."""

    asg_name: str
    source: Literal["launch_configuration", "launch_template"]
    launch_configuration: str | None = None  # source = "launch_configuration"
    launch_template_id: str | None = None  # source = "launch_template"
    launch_template_version: str | None = None  # the version the group ran (e.g. "3", "$Latest")
    source_ami: str  # the AMI the group ran at adoption (the pool's first base_ami)
    adopted_at: str  # ISO 8601, UTC

    @model_validator(mode="after")
    def _source(self) -> Adopt:
        if self.source == "launch_configuration" and not self.launch_configuration:
            raise ValueError('source = "launch_configuration" needs launch_configuration')
        if self.source == "launch_template" and not self.launch_template_id:
            raise ValueError('source = "launch_template" needs launch_template_id')
        return self


class PoolRollout(Strict):
    """One pool's rollout keys (each field is a key of ``[pools.NAME]``). ``launch = "none"``:
    baked but not rolled out here. No key at all: a pool only baked (the stack refuses it)."""

    launch: Literal["template", "configuration", "nodegroup", "none"] = "template"
    # Where the pool's nodes live (its launch template, group or node group), when not in the
    # stack's region: the bake's region or one of [distribute] regions, whose copy they launch.
    node_region: str | None = None
    asg: AsgSettings | None = None
    launch_template: LaunchTemplateSettings = LaunchTemplateSettings()
    nodegroup: NodegroupSettings | None = None
    # Written by `bake adopt`: the stack imports this existing ASG (see Adopt).
    adopt: Adopt | None = None
    fast_snapshot_restore: FastSnapshotRestore | None = None

    @field_validator("node_region")
    @classmethod
    def _node_region(cls, v: str | None) -> str | None:
        if v is not None and v not in REGIONS:
            raise ValueError(f"{v!r} is not an AWS Region{suggest(v, REGIONS)}")
        return v

    @model_validator(mode="after")
    def _mode_tables(self) -> PoolRollout:
        if not self.configured:
            return self
        if self.launch in ("template", "configuration") and self.asg is None:
            raise ValueError(
                f'launch = "{self.launch}" needs an [asg] table with subnet_ids or availability_zones'
            )
        if self.launch == "nodegroup" and self.nodegroup is None:
            raise ValueError('launch = "nodegroup" needs a [nodegroup] table (cluster_name, node_role_arn, subnet_ids)')
        if self.launch == "nodegroup" and self.asg is not None:
            raise ValueError('launch = "nodegroup": EKS owns the group; size it in [nodegroup], not [asg]')
        if self.launch == "configuration" and self.asg and self.asg.instance_refresh and self.asg.instance_refresh.auto_rollback:
            raise ValueError("asg.instance_refresh.auto_rollback needs a launch template (launch = \"template\")")
        if self.launch == "configuration" and self.launch_template.volume_initialization_rate is not None:
            raise ValueError("launch_template.volume_initialization_rate: a launch configuration has no such "
                             'setting; use launch = "template" (or "nodegroup")')
        if self.adopt is not None:
            if self.launch not in ("template", "configuration"):
                raise ValueError(f'adopt: an adopted Auto Scaling group needs launch = "template" or '
                                 f'"configuration" (got {self.launch!r})')
            if self.asg is None or self.asg.name != self.adopt.asg_name:
                raise ValueError(f"adopt: asg.name must be the adopted group's name {self.adopt.asg_name!r} "
                                 f"(another name would replace the group)")
        return self

    @property
    def configured(self) -> bool:
        """Whether bake.toml set any rollout key for this pool."""
        return bool(self.model_fields_set)


class StateSettings(Strict):
    """``[state]``: where Terraform keeps the stack's state."""

    backend: Literal["local", "s3"] = "local"
    # local: relative to the stack's folder (cdktf.out/stacks/nodepools); default: beside bake.toml's cwd.
    path: str | None = None
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    dynamodb_table: str | None = None
    use_lockfile: bool | None = None
    encrypt: bool = True
    kms_key_id: str | None = None
    role_arn: str | None = None

    @model_validator(mode="after")
    def _s3(self) -> StateSettings:
        if self.backend == "s3":
            missing = [k for k in ("bucket", "key") if getattr(self, k) is None]
            if missing:
                raise ValueError(f'backend = "s3" needs {" and ".join(missing)}')
            if self.path is not None:
                raise ValueError('path is for backend = "local"; an s3 backend uses bucket and key')
        else:
            extra = [k for k in ("bucket", "key", "dynamodb_table", "use_lockfile", "kms_key_id", "role_arn")
                     if getattr(self, k) is not None]
            if extra:
                raise ValueError(f'{", ".join(extra)}: only for backend = "s3"')
        return self


class ProviderSettings(Strict):
    """``[provider]``: the AWS provider block (no endpoints: AWS_ENDPOINT_URL does that)."""

    default_tags: dict[str, str] = {}
    allowed_account_ids: list[str] = []
    profile: str | None = None


