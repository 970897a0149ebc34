"""Typed props for the node-pool constructs, and how to build them from bake.toml + amis.lock.json.

Pure: no cdktf, no boto3, no file reads. ``main.py`` loads the config and the lock, reads any
``user_data_file``, and hands the results to :func:`stack_props`; the constructs only declare.
The settings come typed and validated from ``bake.model`` (``load_config`` checks every rollout
table): nothing here checks them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from bake.data_volume import DEVICE
from bake.errors import UsageError
from bake.model.config import GP3_BASE_IOPS, GP3_BASE_MIBS, BakeConfig, PoolConfig
from bake.model.lock import LockData, LockEntry
from bake.model.rollout import Adopt, AsgSettings, BlockDevice, NodegroupSettings, PoolRollout, ProviderSettings, StateSettings
from bake.model.stack import POOL_TAG
from bake.node_user_data import with_cache_mount

Launch = Literal["template", "configuration", "nodegroup"]


class MissingAmiError(UsageError):
    """A pool in the stack has no baked AMI in the lock file yet."""


@dataclass(frozen=True)
class InstanceProps:
    """What every instance of a pool runs with (launch template or launch configuration)."""

    instance_type: str
    security_group_ids: tuple[str, ...] = ()
    iam_instance_profile: str | None = None  # a name, or an ARN (starts with "arn:")
    user_data: str | None = None  # plain text; the constructs encode it as each resource needs
    key_name: str | None = None
    root_volume_size: int | None = None
    root_volume_type: str = "gp3"
    root_volume_encrypted: bool | None = None
    # Stated on gp3 (its baseline): a launch's mapping overrides the AMI's key by key, and the AMI
    # records the builder's volume, which may have run with more (docs/aws-rules.md).
    root_volume_iops: int | None = None
    root_volume_throughput: int | None = None
    device_name: str = "/dev/xvda"
    block_devices: tuple[BlockDevice, ...] = ()  # further EBS volumes
    http_put_response_hop_limit: int = 1  # bake.model.rollout's default, and why
    detailed_monitoring: bool | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    volume_initialization_rate: int | None = None  # MiB/s, on every volume made from a snapshot


@dataclass(frozen=True)
class NodePoolProps:
    name: str
    ami_id: str
    launch: Launch
    instance: InstanceProps
    asg: AsgSettings | None = None
    nodegroup: NodegroupSettings | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # An existing ASG this pool adopted: imported, and its tags kept exactly (asg.tags/group_tags
    # only; the pool's own tags go to the launch template and the instances).
    adopt: Adopt | None = None
    # Fast snapshot restore: every snapshot of the AMI (from the lock) in each of these zones.
    snapshot_ids: tuple[str, ...] = ()
    fast_snapshot_restore_zones: tuple[str, ...] = ()
    # Where the nodes live: None is the stack's region (its default provider).
    region: str | None = None
    # [distribute] ssm_parameter: its name, and the pool's AMI id in each region it is written in.
    ssm_parameter: str | None = None
    ssm_values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackProps:
    region: str
    pools: tuple[NodePoolProps, ...]
    state: StateSettings = StateSettings()
    provider: ProviderSettings = ProviderSettings()

    def regions(self) -> list[str]:
        """Every region besides the stack's own that a pool's nodes or SSM parameter live in: one
        provider alias each."""
        used = {p.region for p in self.pools if p.region} | {r for p in self.pools for r in p.ssm_values}
        return sorted(used - {self.region})


def pool_props(pool: PoolConfig, rollout: PoolRollout, entry: LockEntry, stack_region: str,
               user_data: str | None) -> NodePoolProps:
    """One pool's props; the AMI side's keys are the defaults of the launch template's."""
    lt = rollout.launch_template
    tags = {**pool.tags, POOL_TAG: pool.name}
    volume_type = lt.root_volume_type or pool.root_volume_type
    gp3 = volume_type == "gp3"
    instance = InstanceProps(
        instance_type=lt.instance_type or pool.instance_type,
        security_group_ids=tuple(lt.security_group_ids if lt.security_group_ids is not None
                                 else pool.security_group_ids),
        iam_instance_profile=lt.iam_instance_profile or pool.iam_instance_profile,
        user_data=user_data if user_data is not None else lt.user_data,
        key_name=lt.key_name,
        root_volume_size=lt.root_volume_size or pool.root_volume_size,
        root_volume_type=volume_type,
        root_volume_encrypted=lt.root_volume_encrypted,
        root_volume_iops=GP3_BASE_IOPS if gp3 else None,
        root_volume_throughput=GP3_BASE_MIBS if gp3 else None,
        device_name=lt.device_name,
        block_devices=tuple(lt.block_devices),
        http_put_response_hop_limit=lt.http_put_response_hop_limit,
        detailed_monitoring=lt.detailed_monitoring,
        tags={**tags, **lt.tags},
        volume_initialization_rate=lt.volume_initialization_rate,
    )
    assert rollout.launch != "none"
    node_region = rollout.node_region or stack_region
    if entry.cache == "data-volume":
        return cache_volume_props(pool, entry, instance, node_region, NodePoolProps(
            name=pool.name, ami_id=entry.base_ami, launch=rollout.launch, instance=instance, asg=rollout.asg,
            nodegroup=rollout.nodegroup, tags=tags, adopt=rollout.adopt,
            region=None if node_region == stack_region else node_region,
            snapshot_ids=tuple(entry.snapshot_ids) if rollout.fast_snapshot_restore else (),
            fast_snapshot_restore_zones=tuple(rollout.fast_snapshot_restore.availability_zones)
            if rollout.fast_snapshot_restore else ()))
    ami_id = entry.ami_in(node_region)
    if ami_id is None:
        copies = ", ".join(f"{r}: {a}" for r, a in sorted((entry.copies or {}).items())) or "none"
        raise MissingAmiError(
            f"pool {pool.name!r}: no AMI in {node_region}, where its nodes live (the lock's {entry.ami_id} is in "
            f"{entry.region}; copies: {copies}); list {node_region} in [pools.{pool.name}.distribute] regions "
            f"and run python -m bake build --pool {pool.name}"
        )
    fsr = rollout.fast_snapshot_restore
    # The lock records the original AMI's snapshots only: a copy's are unknown here.
    if fsr and entry.region != node_region:
        raise MissingAmiError(
            f"pool {pool.name!r}: fast_snapshot_restore needs the snapshots of the AMI its nodes launch in "
            f"{node_region}, a copy of {entry.ami_id} (baked in {entry.region}) whose snapshot ids the lock does "
            f"not record; rebake the pool in {node_region} or drop [pools.{pool.name}.fast_snapshot_restore]"
        )
    if fsr and not entry.snapshot_ids:
        raise MissingAmiError(
            f"pool {pool.name!r}: fast_snapshot_restore needs the snapshot ids of {entry.ami_id}, which its lock "
            f"entry does not record (baked before they were): rebake it: python -m bake build --pool {pool.name}"
        )
    ssm = pool.distribute.ssm_parameter
    ssm_values = {entry.region: entry.ami_id, **(entry.copies or {})} if ssm else {}
    return NodePoolProps(name=pool.name, ami_id=ami_id, launch=rollout.launch, instance=instance,
                         asg=rollout.asg, nodegroup=rollout.nodegroup, tags=tags, adopt=rollout.adopt,
                         region=None if node_region == stack_region else node_region,
                         ssm_parameter=ssm, ssm_values=ssm_values,
                         snapshot_ids=tuple(entry.snapshot_ids) if fsr else (),
                         fast_snapshot_restore_zones=tuple(fsr.availability_zones) if fsr else ())


def cache_volume_props(pool: PoolConfig, entry: LockEntry, instance: InstanceProps, node_region: str,
                       props: NodePoolProps) -> NodePoolProps:
    """A data-volume pool (docs/data-volume.md): its nodes launch the stock AMI the cache was baked
    on, with the cache snapshot mapped at the data device (the pool's volume type; the
    initialization rate applies to it as to any volume made from a snapshot) and, on AL2023, the
    user data that mounts it at containerd's root; on Bottlerocket it is the data volume itself.
    In a copy region: the snapshot's copy there and that region's stock AMI, both from the lock."""
    snapshot, base = entry.ami_in(node_region), entry.base_ami_in(node_region)
    if snapshot is None or base is None:
        copies = ", ".join(f"{r}: {a}" for r, a in sorted((entry.copies or {}).items())) or "none"
        raise MissingAmiError(
            f"pool {pool.name!r}: no cache snapshot in {node_region}, where its nodes live (the lock's "
            f"{entry.ami_id} is in {entry.region}; copies: {copies}); list {node_region} in "
            f"[pools.{pool.name}.distribute] regions and run python -m bake build --pool {pool.name}")
    device = entry.data_device or DEVICE
    if any(d.device_name == device for d in instance.block_devices):
        raise UsageError(f"pool {pool.name!r}: launch_template.block_devices maps {device}, where the cache snapshot goes")
    cache = BlockDevice(device_name=device, snapshot_id=snapshot, volume_size=entry.snapshot_gib,
                        volume_type=instance.root_volume_type, delete_on_termination=True)  # type: ignore[arg-type]
    user_data = instance.user_data if pool.os == "bottlerocket" else with_cache_mount(instance.user_data, pool.name)
    return replace(props, ami_id=base, snapshot_ids=(snapshot,) if props.snapshot_ids else (),
                   instance=replace(instance, block_devices=(*instance.block_devices, cache), user_data=user_data))


def stack_props(config: BakeConfig, lock: LockData, user_data: Mapping[str, str]) -> StackProps:
    """The whole stack's props. ``user_data``: the text of each pool's ``user_data_file``, read by
    the caller. Raises ConfigError for a pool without rollout settings or a config without a
    region, MissingAmiError naming every pool without a baked AMI and the command that bakes it."""
    region = config.stack_region()
    pools: list[NodePoolProps] = []
    missing: list[str] = []
    for name, pool in config.pools.items():
        rollout = config.rollout_of(name)
        if rollout.launch == "none":
            continue
        entry = lock.pool(name).current
        if entry is None:
            missing.append(name)
            continue
        pools.append(pool_props(pool, rollout, entry, region, user_data.get(name)))
    if missing:
        cmds = "; ".join(f"python -m bake build --pool {n}" for n in missing)
        raise MissingAmiError(
            f"no baked AMI in the lock file for pool{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}: bake first ({cmds})"
        )
    return StackProps(region=region, pools=tuple(pools), state=config.state, provider=config.provider)
