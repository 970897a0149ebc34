"""``NodePool``: one pool's launch template (or launch configuration) and its group.

Construct ids are part of the Terraform addresses and never change: every resource's logical
id is the pool's name (``aws_launch_template.general``, ``aws_autoscaling_group.general``, the
scheme of ``bake.model.stack``, which ``bake review`` reads too), so a new AMI shows in the plan
as an update of those same addresses.
"""

from __future__ import annotations

import base64

from collections.abc import Mapping

from cdktf import TerraformProvider, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.autoscaling_group import (
    AutoscalingGroup,
    AutoscalingGroupInstanceRefresh,
    AutoscalingGroupInstanceRefreshPreferences,
    AutoscalingGroupLaunchTemplate,
    AutoscalingGroupTag,
)
from cdktf_cdktf_provider_aws.ebs_fast_snapshot_restore import EbsFastSnapshotRestore
from cdktf_cdktf_provider_aws.eks_node_group import (
    EksNodeGroup,
    EksNodeGroupLaunchTemplate,
    EksNodeGroupScalingConfig,
    EksNodeGroupTaint,
    EksNodeGroupUpdateConfig,
)
from cdktf_cdktf_provider_aws.launch_configuration import (
    LaunchConfiguration,
    LaunchConfigurationEbsBlockDevice,
    LaunchConfigurationMetadataOptions,
    LaunchConfigurationRootBlockDevice,
)
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateMonitoring,
    LaunchTemplateTagSpecifications,
)
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from bake.model.stack import fsr_logical_id, logical_id, ssm_logical_id
from nodepools.props import InstanceProps, NodePoolProps


def _b64(text: str | None) -> str | None:
    return None if text is None else base64.b64encode(text.encode()).decode()


def _bool_str(v: bool | None) -> str | None:
    return None if v is None else ("true" if v else "false")


class NodePool(Construct):
    """A pool's nodes. ``launch_template`` / ``launch_configuration`` / ``asg`` / ``node_group``
    are set according to ``props.launch`` (None otherwise)."""

    launch_template: LaunchTemplate | None
    launch_configuration: LaunchConfiguration | None
    asg: AutoscalingGroup | None
    node_group: EksNodeGroup | None

    def __init__(self, scope: Construct, id: str, props: NodePoolProps,
                 providers: Mapping[str, TerraformProvider | None] | None = None) -> None:
        """``providers``: the stack's provider per region (None: the default one); needed only for
        a pool whose nodes or SSM parameter are in another region than the stack's."""
        super().__init__(scope, id)
        self.props = props
        providers = providers or {}
        # The pool's resources, each with its region's provider (None: the stack's default).
        self.provider = providers[props.region] if props.region else None
        self.launch_template = self.launch_configuration = self.asg = self.node_group = None
        if props.launch == "template":
            self.launch_template = self._launch_template(props, with_profile=True)
            self.asg = self._asg(props)
        elif props.launch == "configuration":
            self.launch_configuration = self._launch_configuration(props)
            self.asg = self._asg(props)
        else:
            # EKS rejects an instance profile in a node group's template: it uses node_role_arn.
            self.launch_template = self._launch_template(props, with_profile=False)
            self.node_group = self._node_group(props)
        self.fast_snapshot_restores = self._fast_snapshot_restores(props)
        self.ssm_parameters = [self._ssm_parameter(props, region, ami, providers.get(region))
                               for region, ami in sorted(props.ssm_values.items())]

    # -- fast snapshot restore (every mode) -------------------------------------------------------
    def _fast_snapshot_restores(self, p: NodePoolProps) -> list[EbsFastSnapshotRestore]:
        """In the nodes' region, as the snapshots are (props refuses a pool launching a copy)."""
        out = []
        for snap in p.snapshot_ids:
            for zone in p.fast_snapshot_restore_zones:
                fsr = EbsFastSnapshotRestore(self, f"fsr_{snap}_{zone}", snapshot_id=snap, availability_zone=zone,
                                             provider=self.provider)
                fsr.override_logical_id(fsr_logical_id(p.name, snap, zone))
                out.append(fsr)
        return out

    def _ssm_parameter(self, p: NodePoolProps, region: str, ami_id: str,
                       provider: TerraformProvider | None) -> SsmParameter:
        """The pool's current AMI in ``region`` under [distribute] ssm_parameter, as an
        ``aws:ec2:image`` parameter (launch templates elsewhere read it with resolve:ssm:)."""
        param = SsmParameter(
            self, f"ssm_{region}",
            name=p.ssm_parameter or "",
            type="String",
            data_type="aws:ec2:image",
            value=ami_id,
            description=f"bake pool {p.name}: its current AMI in {region}",
            tags=dict(p.tags),
            provider=provider,
        )
        param.override_logical_id(ssm_logical_id(p.name, region))
        return param

    # -- launch template (modes "template" and "nodegroup") ------------------------------------
    def _launch_template(self, p: NodePoolProps, with_profile: bool) -> LaunchTemplate:
        i: InstanceProps = p.instance
        profile = None
        if with_profile and i.iam_instance_profile:
            profile = (LaunchTemplateIamInstanceProfile(arn=i.iam_instance_profile)
                       if i.iam_instance_profile.startswith("arn:")
                       else LaunchTemplateIamInstanceProfile(name=i.iam_instance_profile))
        lt = LaunchTemplate(
            self, "launch_template",
            provider=self.provider,
            name_prefix=f"{p.name}-",
            description=f"bake pool {p.name}",
            image_id=p.ami_id,
            instance_type=i.instance_type,
            vpc_security_group_ids=list(i.security_group_ids) or None,
            iam_instance_profile=profile,
            user_data=_b64(i.user_data),
            key_name=i.key_name,
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name=i.device_name,
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=i.root_volume_size,
                    volume_type=i.root_volume_type,
                    iops=i.root_volume_iops,
                    throughput=i.root_volume_throughput,
                    encrypted=_bool_str(i.root_volume_encrypted),
                    delete_on_termination="true",
                    volume_initialization_rate=i.volume_initialization_rate,
                ),
            )] + [LaunchTemplateBlockDeviceMappings(
                device_name=d.device_name,
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=d.volume_size,
                    volume_type=d.volume_type,
                    iops=d.iops,
                    throughput=d.throughput,
                    encrypted=_bool_str(d.encrypted),
                    snapshot_id=d.snapshot_id,
                    delete_on_termination=_bool_str(d.delete_on_termination),
                    # the rate applies only to volumes made from a snapshot
                    volume_initialization_rate=i.volume_initialization_rate if d.snapshot_id else None,
                ),
            ) for d in i.block_devices],
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled",
                http_tokens="required",  # IMDSv2 only, always
                http_put_response_hop_limit=i.http_put_response_hop_limit,
            ),
            monitoring=(None if i.detailed_monitoring is None
                        else LaunchTemplateMonitoring(enabled=i.detailed_monitoring)),
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type=kind, tags=dict(i.tags))
                for kind in ("instance", "volume")
            ],
            tags=dict(i.tags),
            update_default_version=True,
        )
        lt.override_logical_id(logical_id(p.name))
        return lt

    # -- launch configuration (legacy mode "configuration") ------------------------------------
    def _launch_configuration(self, p: NodePoolProps) -> LaunchConfiguration:
        i = p.instance
        lc = LaunchConfiguration(
            self, "launch_configuration",
            provider=self.provider,
            name_prefix=f"{p.name}-",
            image_id=p.ami_id,
            instance_type=i.instance_type,
            security_groups=list(i.security_group_ids) or None,
            iam_instance_profile=i.iam_instance_profile,
            user_data=i.user_data,  # the provider base64-encodes a launch configuration's itself
            key_name=i.key_name,
            enable_monitoring=i.detailed_monitoring,
            root_block_device=LaunchConfigurationRootBlockDevice(
                volume_size=i.root_volume_size,
                volume_type=i.root_volume_type,
                iops=i.root_volume_iops,
                throughput=i.root_volume_throughput,
                encrypted=i.root_volume_encrypted,
                delete_on_termination=True,
            ),
            ebs_block_device=[LaunchConfigurationEbsBlockDevice(
                device_name=d.device_name,
                volume_size=d.volume_size,
                volume_type=d.volume_type,
                iops=d.iops,
                throughput=d.throughput,
                encrypted=d.encrypted,
                snapshot_id=d.snapshot_id,
                delete_on_termination=d.delete_on_termination,
            ) for d in i.block_devices] or None,
            metadata_options=LaunchConfigurationMetadataOptions(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=i.http_put_response_hop_limit,
            ),
            # Launch configurations are immutable: a new AMI is a new one, created before the
            # ASG switches to it and the old one is deleted.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        lc.override_logical_id(logical_id(p.name))
        return lc

    # -- Auto Scaling group ---------------------------------------------------------------------
    def _asg(self, p: NodePoolProps) -> AutoscalingGroup:
        a = p.asg
        assert a is not None
        lt_spec = lc_name = None
        if self.launch_template is not None:
            lt_spec = AutoscalingGroupLaunchTemplate(
                id=self.launch_template.id,
                version=Token.as_string(self.launch_template.latest_version),
            )
        else:
            assert self.launch_configuration is not None
            lc_name = self.launch_configuration.name
        # An adopted group keeps exactly its own tags: adding the pool's would change it.
        tags = dict(a.tags) if p.adopt else {**p.tags, **a.tags}
        asg = AutoscalingGroup(
            self, "asg",
            provider=self.provider,
            name=a.name or p.name,
            min_size=a.min_size,
            max_size=a.max_size,
            desired_capacity=a.desired_capacity,
            vpc_zone_identifier=list(a.subnet_ids) or None,
            availability_zones=list(a.availability_zones) or None,
            launch_template=lt_spec,
            launch_configuration=lc_name,
            health_check_type=a.health_check_type,
            health_check_grace_period=a.health_check_grace_period,
            default_cooldown=a.default_cooldown,
            capacity_rebalance=a.capacity_rebalance,
            termination_policies=list(a.termination_policies) or None,
            target_group_arns=list(a.target_group_arns) or None,
            max_instance_lifetime=a.max_instance_lifetime,
            protect_from_scale_in=a.protect_from_scale_in,
            wait_for_capacity_timeout=a.wait_for_capacity_timeout,
            tag=[AutoscalingGroupTag(key=k, value=v, propagate_at_launch=True)
                 for k, v in sorted(tags.items())]
                + [AutoscalingGroupTag(key=k, value=v, propagate_at_launch=False)
                   for k, v in sorted(a.group_tags.items())],
            suspended_processes=list(a.suspended_processes) or None,
            enabled_metrics=list(a.enabled_metrics) or None,
            metrics_granularity=a.metrics_granularity,
            placement_group=a.placement_group,
            default_instance_warmup=a.default_instance_warmup,
            instance_refresh=self._refresh(p),
            # The autoscaler (cluster-autoscaler, Karpenter, people) owns the size after creation.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_capacity"]),
        )
        asg.override_logical_id(logical_id(p.name))
        if p.adopt is not None:
            # A Terraform import block: the first plan imports the live group, then updates it in
            # place to the pool's template/configuration; once in the state it is a no-op.
            asg.import_from(p.adopt.asg_name, self.provider)
        return asg

    @staticmethod
    def _refresh(p: NodePoolProps) -> AutoscalingGroupInstanceRefresh | None:
        r = p.asg.instance_refresh if p.asg else None
        if r is None:
            return None
        return AutoscalingGroupInstanceRefresh(
            strategy=r.strategy,
            triggers=list(r.triggers) or None,
            preferences=AutoscalingGroupInstanceRefreshPreferences(
                min_healthy_percentage=r.min_healthy_percentage,
                max_healthy_percentage=r.max_healthy_percentage,
                instance_warmup=None if r.instance_warmup is None else str(r.instance_warmup),
                checkpoint_percentages=list(r.checkpoint_percentages) or None,
                checkpoint_delay=None if r.checkpoint_delay is None else str(r.checkpoint_delay),
                auto_rollback=r.auto_rollback,
                skip_matching=r.skip_matching,
            ),
        )

    # -- EKS managed node group ----------------------------------------------------------------
    def _node_group(self, p: NodePoolProps) -> EksNodeGroup:
        n = p.nodegroup
        assert n is not None and self.launch_template is not None
        update = None
        if n.max_unavailable is not None or n.max_unavailable_percentage is not None:
            update = EksNodeGroupUpdateConfig(max_unavailable=n.max_unavailable,
                                              max_unavailable_percentage=n.max_unavailable_percentage)
        else:
            update = EksNodeGroupUpdateConfig(max_unavailable=1)
        ng = EksNodeGroup(
            self, "node_group",
            provider=self.provider,
            cluster_name=n.cluster_name,
            node_group_name=n.node_group_name or p.name,
            node_role_arn=n.node_role_arn,
            subnet_ids=list(n.subnet_ids),
            scaling_config=EksNodeGroupScalingConfig(
                min_size=n.min_size,
                max_size=n.max_size,
                desired_size=n.desired_size if n.desired_size is not None else n.min_size,
            ),
            update_config=update,
            capacity_type=n.capacity_type,
            labels=dict(n.labels) or None,
            taint=[EksNodeGroupTaint(key=t.key, value=t.value, effect=t.effect) for t in n.taints] or None,
            force_update_version=n.force_update_version,
            # The custom AMI is in the template: EKS then sets ami_type CUSTOM itself.
            launch_template=EksNodeGroupLaunchTemplate(
                id=self.launch_template.id,
                version=Token.as_string(self.launch_template.latest_version),
            ),
            tags={**p.tags, **n.tags},
            lifecycle=TerraformResourceLifecycle(ignore_changes=["scaling_config[0].desired_size"]),
        )
        ng.override_logical_id(logical_id(p.name))
        return ng
