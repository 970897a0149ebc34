"""What a config names that a policy can be scoped to: regions, accounts, parameters, ECR
repositories, subnets, instance profiles, KMS keys, launch modes, the state bucket."""

from __future__ import annotations

from dataclasses import dataclass

from bake.model.config import BakeConfig
from bake.model.refs import parse_reference
from bake.partitions import DEFAULT as DEFAULT_PARTITION
from bake.partitions import partition_of


@dataclass(frozen=True)
class Scope:
    regions: tuple[str, ...]  # ("*",) when the config names none
    partition: str  # the region's ("aws-us-gov", "aws-cn", ...); "aws" when the config names none
    copy_regions: tuple[str, ...]  # [distribute] regions besides the bake's own (copies, their parameters)
    node_regions: tuple[str, ...]  # pools' node_region besides the bake's own (their nodes' stack resources)
    accounts: tuple[str, ...]  # ("*",) when neither --account nor [provider] allowed_account_ids names one
    ssm_parameters: tuple[str, ...]  # "/aws/service/..." (AWS-owned) or the account's own
    ecr_repositories: tuple[tuple[str, str, str], ...]  # (region, account, repository)
    subnets: tuple[str, ...]  # builder subnets; () = the default VPC's
    builder_security_groups: tuple[str, ...]
    instance_profiles: tuple[str, ...]  # builder and launch template profiles (names)
    node_roles: tuple[str, ...]  # EKS node group role ARNs
    kms_keys: tuple[str, ...]
    copy_kms_keys: tuple[tuple[str, str], ...]  # (region, key) of [distribute] kms_key_ids
    shares: bool  # a pool's [distribute] names accounts, organizations or OUs
    shares_snapshots: bool  # ... accounts (who also get create-volume permission on the snapshots)
    published_parameters: tuple[str, ...]  # [distribute] ssm_parameter names the stack writes
    fast_snapshot_restore: bool  # a pool's [fast_snapshot_restore]: the stack enables it
    regional_aliases: bool  # ecr_regional_aliases with an ECR image: the partition's regions are listed
    asg_base_amis: bool  # a pool's base_ami is "asg:NAME"
    launch_modes: frozenset[str]  # "template" | "configuration" | "nodegroup"
    asg_names: tuple[str, ...]  # the stack's Auto Scaling groups (asg.name, else the pool's name)
    configuration_pools: tuple[str, ...]  # pools whose launch configurations are named POOL-...
    nodegroups: tuple[tuple[str, str], ...]  # (cluster, node group name)
    reads_console: bool  # a pool's host_key_policy is not "tofu": the builder's console is read
    adopts: bool
    state_bucket: str | None
    state_key: str | None
    state_lock_table: str | None
    data_volume: bool = False  # a pool's cache = "data-volume": the bake snapshots a volume (docs/data-volume.md)
    # [distribute] regions of data-volume pools (CopySnapshot; their base_ami parameter read there)
    # and of AMI pools (CopyImage): copy_regions is both.
    cache_copy_regions: tuple[str, ...] = ()
    image_copy_regions: tuple[str, ...] = ()

    @property
    def everywhere(self) -> tuple[str, ...]:
        """The bake's region and every region a copy goes to."""
        return self.regions if self.regions == ("*",) else tuple(dict.fromkeys(self.regions + self.copy_regions))

    @property
    def stack_regions(self) -> tuple[str, ...]:
        """The bake's region and every pool's node_region: where terraform makes the launch
        templates, configurations, groups and node groups."""
        return self.regions if self.regions == ("*",) else tuple(dict.fromkeys(self.regions + self.node_regions))

    def arns(self, service: str, resource: str, *, account: bool = True, region: bool = True,
             regions: tuple[str, ...] | None = None) -> list[str]:
        """``arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`` for every region (``regions``, else the
        bake's) and account in scope."""
        regions = (regions or self.regions) if region else ("",)
        accounts = self.accounts if account else ("",)
        return [f"arn:{self.partition}:{service}:{r}:{a}:{resource}" for r in regions for a in accounts]


def scope_of(config: BakeConfig, accounts: list[str] | None = None) -> Scope:
    """The scope ``config`` names (the typed models of ``bake.model``, rollout tables included)."""
    accounts = list(accounts or config.provider.allowed_account_ids)
    ssm, repos, subnets, groups, profiles, roles, keys, modes = [], [], [], [], [], [], [], set()
    asg_base = adopts = data_volume = False
    copy_regions: list[str] = []
    cache_copies: list[str] = []
    image_copies: list[str] = []
    node_regions: list[str] = []
    copy_keys: list[tuple[str, str]] = []
    published: list[str] = []
    asg_names: list[str] = []
    configuration_pools: list[str] = []
    nodegroups: list[tuple[str, str]] = []
    for pool in config.pools.values():
        if pool.base_ami.startswith("ssm:"):
            ssm.append(pool.base_ami[4:])
        asg_base |= pool.base_ami.startswith("asg:")
        data_volume |= pool.cache == "data-volume"
        for image in pool.images:
            ref = parse_reference(image)
            if ref.ecr:
                account, region = ref.ecr
                repos.append((region, account, ref.repository))
        subnets += [pool.subnet_id] if pool.subnet_id else []
        groups += pool.security_group_ids
        profiles += [pool.iam_instance_profile] if pool.iam_instance_profile else []
        keys += [pool.kms_key_id] if pool.kms_key_id else []
        d = pool.distribute
        # No region in the file: every listed region may get a copy (and "*" covers them anyway).
        mine = d.copy_regions(config.region) if config.region else d.regions
        copy_regions += mine
        (cache_copies if pool.cache == "data-volume" else image_copies).extend(mine)
        copy_keys += [(r, k) for r, k in d.kms_key_ids.items() if r in copy_regions]
        published += [d.ssm_parameter] if d.ssm_parameter else []
        ro = pool.rollout
        if not ro.configured or ro.launch == "none":
            continue
        modes.add(ro.launch)
        node_regions += [ro.node_region] if ro.node_region and ro.node_region != config.region else []
        if ro.launch_template.iam_instance_profile:
            profiles.append(ro.launch_template.iam_instance_profile)
        if ro.asg is not None and ro.launch in ("template", "configuration"):
            asg_names.append(ro.asg.name or pool.name)
        if ro.launch == "configuration":
            configuration_pools.append(pool.name)
        if ro.launch == "nodegroup" and ro.nodegroup is not None:
            roles.append(ro.nodegroup.node_role_arn)
            nodegroups.append((ro.nodegroup.cluster_name, ro.nodegroup.node_group_name or pool.name))
        adopts |= ro.adopt is not None
    s3 = config.state.backend == "s3"
    return Scope(
        regions=(config.region,) if config.region else ("*",),
        partition=partition_of(config.region) if config.region else DEFAULT_PARTITION,
        copy_regions=tuple(dict.fromkeys(copy_regions)),
        cache_copy_regions=tuple(dict.fromkeys(cache_copies)),
        image_copy_regions=tuple(dict.fromkeys(image_copies)),
        node_regions=tuple(dict.fromkeys(node_regions)),
        accounts=tuple(dict.fromkeys(accounts)) or ("*",),
        ssm_parameters=tuple(dict.fromkeys(ssm)),
        ecr_repositories=tuple(dict.fromkeys(repos)),
        subnets=tuple(dict.fromkeys(subnets)),
        builder_security_groups=tuple(dict.fromkeys(groups)),
        instance_profiles=tuple(dict.fromkeys(p.rsplit("/", 1)[-1] for p in profiles)),
        node_roles=tuple(dict.fromkeys(roles)),
        kms_keys=tuple(dict.fromkeys(keys)),
        copy_kms_keys=tuple(dict.fromkeys(copy_keys)),
        shares=any(p.distribute.shared for p in config.pools.values()),
        shares_snapshots=any(p.distribute.accounts for p in config.pools.values()),
        published_parameters=tuple(dict.fromkeys(published)),
        fast_snapshot_restore=any(p.rollout.fast_snapshot_restore is not None for p in config.pools.values()),
        regional_aliases=any(p.ecr_regional_aliases and any(parse_reference(i).ecr for i in p.images)
                             for p in config.pools.values()),
        asg_base_amis=asg_base,
        launch_modes=frozenset(modes),
        asg_names=tuple(dict.fromkeys(asg_names)),
        configuration_pools=tuple(configuration_pools),
        nodegroups=tuple(nodegroups),
        reads_console=any(p.host_key_policy != "tofu" for p in config.pools.values()),
        adopts=adopts,
        state_bucket=config.state.bucket if s3 else None,
        state_key=config.state.key if s3 else None,
        state_lock_table=config.state.dynamodb_table if s3 else None,
        data_volume=data_volume,
    )
