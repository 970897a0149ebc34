"""The permission table: for each code path, the actions it calls, on which resources, under
which conditions, for which roles. Adding a feature's actions is one row here.

Filled by running each use against moto in IAM mode and reading what it called and what it was
refused (``python -m tests.iam.minimality --discover``), then proven needed action by action
(``python -m tests.iam.minimality``). ``proof`` names the use that fails without the row, or why
the sandbox cannot show it (a registry or KMS call moto does not see).

Roles:
- ``plan``: read only; ``bake plan``, ``bake review``, ``bake adopt``, ``python main.py`` and
  ``terraform plan``: what a pull request from a fork may run.
- ``bake``: ``bake build``, its copies to other regions and their sharing ([distribute]).
- ``deploy``: ``terraform apply`` / ``cdktf deploy`` of the stack, imports included, with the
  SSM parameters and fast snapshot restores it makes.
- ``lifecycle``: ``bake prune`` and ``bake sweep``. (``bake rollback`` edits the lock only and
  needs no AWS permission.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bake import tags
from bake.iam.scope import Scope

ROLES = ("plan", "bake", "deploy", "lifecycle")

# Destructive calls only on what the tool created: its tag is on every resource a bake makes.
TOOL_TAGGED = {"StringEquals": {f"aws:ResourceTag/{tags.KEY_TOOL}": tags.TOOL}}
# Creation only when the request puts the tool's tag on what it creates.
TOOL_TAGGING = {"StringEquals": {f"aws:RequestTag/{tags.KEY_TOOL}": tags.TOOL}}
# Tags only as part of the creating call (the tag specifications of these actions).
ON_CREATE = {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateSecurityGroup", "ImportKeyPair", "CreateImage"]}}
# A copy's tags only as part of CopyImage (its TagSpecifications), and only the tool's.
ON_COPY = {"StringEquals": {"ec2:CreateAction": "CopyImage", **TOOL_TAGGING["StringEquals"]}}
# The stack's launch templates carry tags (CreateLaunchTemplate's TagSpecifications) and tag what a
# group launches from them (the template's own tag specifications, applied by RunInstances).
ON_CREATE_TEMPLATE = {"StringEquals": {"ec2:CreateAction": "CreateLaunchTemplate"}}
ON_LAUNCH = {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
PASS_TO_EC2 = {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
PASS_TO_EKS = {"StringEquals": {"iam:PassedToService": "eks.amazonaws.com"}}

ANY = ["*"]  # for actions that support no resource-level permission (Describe*, GetAuthorizationToken)


@dataclass(frozen=True)
class Grant:
    sid: str  # the statement id it renders under (statements with equal scope merge)
    path: str  # the code path that makes the calls
    roles: tuple[str, ...]
    actions: tuple[str, ...]
    resources: Callable[[Scope], list[str]]
    condition: dict | None = None
    when: Callable[[Scope], bool] = lambda s: True
    proof: str = ""


def _ec2(*kinds: str) -> Callable[[Scope], list[str]]:
    return lambda s: [a for k in kinds for a in s.arns("ec2", k)]


def _stack_ec2(*kinds: str) -> Callable[[Scope], list[str]]:
    """EC2 resources of the stack: in the bake's region and every pool's node_region."""
    return lambda s: [a for k in kinds for a in s.arns("ec2", k, regions=s.stack_regions)]


def _images(s: Scope, regions: tuple[str, ...] | None = None) -> list[str]:
    return s.arns("ec2", "image/*", account=False, regions=regions)


def _snapshots(s: Scope, regions: tuple[str, ...] | None = None) -> list[str]:
    return s.arns("ec2", "snapshot/*", account=False, regions=regions)  # EBS snapshot ARNs name no account


def _amis_everywhere(s: Scope) -> list[str]:
    """The AMIs and snapshots in the bake's region and every copy's."""
    return _images(s, s.everywhere) + _snapshots(s, s.everywhere)


def _subnets(s: Scope) -> list[str]:
    return [a for n in s.subnets for a in s.arns("ec2", f"subnet/{n}")] or s.arns("ec2", "subnet/*")


def _ssm(s: Scope) -> list[str]:
    # AWS publishes /aws/service/... itself: those ARNs name no account ("*" matches the empty one).
    # A data-volume pool's parameter is read in its copy regions too (each region's stock AMI).
    regions = s.regions if s.regions == ("*",) else tuple(dict.fromkeys(s.regions + s.cache_copy_regions))
    return [a for p in s.ssm_parameters
            for a in (s.arns("ssm", f"parameter{p}", regions=regions) if not p.startswith("/aws/") else
                      [f"arn:{s.partition}:ssm:{r}:*:parameter{p}" for r in regions])]


def _repos(s: Scope) -> list[str]:
    return [f"arn:{s.partition}:ecr:{r}:{a}:repository/{name}" for r, a, name in s.ecr_repositories]


def _key_arns(s: Scope, key: str, regions: tuple[str, ...] | None = None) -> list[str]:
    # An alias is not a key's resource in a policy: any key of the region (docs/iam.md).
    if key.startswith("arn:"):
        return [key]
    return s.arns("kms", "key/*" if key.startswith("alias/") else f"key/{key}", regions=regions)


def _kms(s: Scope) -> list[str]:
    return [a for k in s.kms_keys for a in _key_arns(s, k)]


def _copy_kms(s: Scope) -> list[str]:
    return [a for region, k in s.copy_kms_keys for a in _key_arns(s, k, (region,))]


def _published(s: Scope) -> list[str]:
    return [a for p in s.published_parameters for a in s.arns("ssm", f"parameter{p}", regions=s.everywhere)]


def _profile_roles(s: Scope) -> list[str]:
    # An instance profile names the role it holds only inside IAM; the console and eksctl
    # give both the same name, which is what this assumes (docs/iam.md).
    return [a for p in s.instance_profiles for a in s.arns("iam", f"role/{p}", region=False)]


NODEGROUP_PROOF = ("unproven: against moto enforcing IAM, terraform's eks:CreateNodegroup passes but its "
                   "signed DescribeNodegroup is refused (403) even for an administrator")


def _nodegroups(s: Scope) -> list[str]:
    # CreateNodegroup is authorized on the cluster, the others on the node group.
    out = []
    for cluster, name in s.nodegroups:
        out += (s.arns("eks", f"cluster/{cluster}", regions=s.stack_regions)
                + s.arns("eks", f"nodegroup/{cluster}/{name}/*", regions=s.stack_regions))
    return out


def _node_roles(s: Scope) -> list[str]:
    return list(s.node_roles)


def _state_objects(s: Scope) -> list[str]:
    return [f"arn:{s.partition}:s3:::{s.state_bucket}/{s.state_key}", f"arn:{s.partition}:s3:::{s.state_bucket}/{s.state_key}.tflock"]


def _state_bucket(s: Scope) -> list[str]:
    return [f"arn:{s.partition}:s3:::{s.state_bucket}"]


def _state_table(s: Scope) -> list[str]:
    return s.arns("dynamodb", f"table/{s.state_lock_table}")


def _has_s3_state(s: Scope) -> bool:
    return s.state_bucket is not None


PLAN, BAKE, DEPLOY, LIFECYCLE = ("plan",), ("bake",), ("deploy",), ("lifecycle",)

# What EC2 needs of a customer managed key to encrypt a volume or snapshot with it, as AWS lists it
# ("Requirements for Amazon EBS encryption", Amazon EBS User Guide; docs/iam.md).
EBS_KMS_ACTIONS = ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
                   "kms:ReEncryptFrom", "kms:ReEncryptTo")

GRANTS: list[Grant] = [
    # --- reading what a config names (plan, bake) -------------------------------------------
    Grant("ReadBaseAmiParameters", "bake/base_ami.py: base_ami = \"ssm:/...\"", ("plan", "bake"),
          ("ssm:GetParameter",), _ssm, when=lambda s: bool(s.ssm_parameters), proof="plan, bake"),
    Grant("Describe", "bake/base_ami.py, bake/build.py: the base AMI, reuse by fingerprint", ("plan", "bake"),
          ("ec2:DescribeImages",), lambda s: ANY, proof="plan, bake"),
    Grant("Describe", "bake/base_ami.py: base_ami = \"asg:NAME\"", ("plan", "bake"),
          ("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
           "ec2:DescribeLaunchTemplateVersions"), lambda s: ANY, when=lambda s: s.asg_base_amis,
          proof="not in the sample config (no asg: base AMI)"),
    Grant("EcrToken", "bake/registry.py: digests and pulls of ECR images", ("plan", "bake"),
          ("ecr:GetAuthorizationToken",), lambda s: ANY, when=lambda s: bool(s.ecr_repositories), proof="plan, bake"),
    Grant("EcrRead", "the registry API behind the token: manifests (plan), layers (the builder's pull)",
          ("plan", "bake"), ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"), _repos,
          when=lambda s: bool(s.ecr_repositories),
          proof="unproven: the sandbox's ECR look-alike is a plain registry that checks the token only"),
    Grant("Describe", "bake/commands/adopt.py: the live group's settings", PLAN,
          ("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeWarmPool",
           "autoscaling:DescribeLaunchConfigurations"), lambda s: ANY, proof="adopt"),
    Grant("Describe", "terraform plan: refreshing the stack's launch templates, configurations and groups",
          ("plan", "deploy"), ("ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                               "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeAutoScalingGroups"),
          lambda s: ANY, when=lambda s: bool(s.launch_modes & {"template", "configuration"}), proof="plan, deploy"),
    # --- a bake (bake/steps/) ------------------------------------------------------------------
    Grant("TaggedCreate", "bake/steps/keypair.py, security_group.py, instance.py: created with the tool's tags",
          BAKE, ("ec2:ImportKeyPair", "ec2:CreateSecurityGroup", "ec2:RunInstances"),
          _ec2("key-pair/*", "security-group/*", "instance/*", "volume/*"), TOOL_TAGGING, proof="bake"),
    Grant("CreateIn", "bake/steps/security_group.py: the builder's group, in the pool's VPC", BAKE,
          ("ec2:CreateSecurityGroup",), _ec2("vpc/*"), proof="bake"),
    Grant("LaunchFrom", "bake/steps/instance.py: what the builder is launched from and into", BAKE,
          ("ec2:RunInstances",), lambda s: _images(s) + _subnets(s) + _ec2("network-interface/*")(s), proof="bake"),
    Grant("LaunchWithOwn", "bake/steps/instance.py: the run's own key pair and group", BAKE,
          ("ec2:RunInstances",), _ec2("key-pair/*", "security-group/*"), TOOL_TAGGED, proof="bake"),
    Grant("LaunchWithGroups", "security_group_ids: the pool's extra groups on the builder", BAKE,
          ("ec2:RunInstances",), lambda s: [a for g in s.builder_security_groups for a in s.arns("ec2", f"security-group/{g}")],
          when=lambda s: bool(s.builder_security_groups), proof="not in the sample config (no extra groups)"),
    Grant("TagOnCreate", "the tag specifications of the creating calls", BAKE, ("ec2:CreateTags",),
          lambda s: _images(s) + _ec2("key-pair/*", "security-group/*", "instance/*", "volume/*")(s),
          ON_CREATE, proof="bake"),
    Grant("Describe", "bake/steps/: the VPC's CIDRs, the builder's address and state", BAKE,
          ("ec2:DescribeVpcs", "ec2:DescribeInstances"), lambda s: ANY, proof="bake"),
    Grant("Describe", "bake/steps/security_group.py: subnet_id names the builder's VPC", BAKE,
          ("ec2:DescribeSubnets",), lambda s: ANY, when=lambda s: bool(s.subnets),
          proof="not in the sample config (no subnet_id)"),
    Grant("OnTheBuilder", "bake/steps/: what a bake does to its own builder, group and key", BAKE,
          ("ec2:AuthorizeSecurityGroupIngress", "ec2:StopInstances", "ec2:CreateImage"),
          _ec2("security-group/*", "instance/*"), TOOL_TAGGED, proof="bake"),
    Grant("OnTheBuilder", "bake/steps/connect.py: the host key fingerprints on the builder's console", BAKE,
          ("ec2:GetConsoleOutput",), _ec2("security-group/*", "instance/*"), TOOL_TAGGED,
          when=lambda s: s.reads_console, proof="bake"),
    Grant("ImageOfTheBuilder", "bake/steps/ami.py: the AMI and its snapshots", BAKE,
          ("ec2:CreateImage",), lambda s: _images(s) + _snapshots(s), proof="bake"),
    Grant("TagSnapshots", "bake/steps/ami.py: the AMI's snapshots get its tags once known",
          BAKE, ("ec2:CreateTags",), lambda s: _snapshots(s), TOOL_TAGGING, proof="bake"),
    Grant("RemoveTagged", "undo (bake/steps/) and sweep/prune (bake/lifecycle/): only what the tool made",
          ("bake", "lifecycle"), ("ec2:TerminateInstances", "ec2:DeleteSecurityGroup", "ec2:DeleteKeyPair",
                                  "ec2:DeregisterImage", "ec2:DeleteSnapshot"),
          lambda s: _amis_everywhere(s) + _ec2("instance/*", "security-group/*", "key-pair/*")(s),
          TOOL_TAGGED, proof="bake (undo), lifecycle"),
    Grant("PassBuilderProfile", "iam_instance_profile: the builder's and the nodes' profile", ("bake", "deploy"),
          ("iam:PassRole",), _profile_roles, PASS_TO_EC2, when=lambda s: bool(s.instance_profiles),
          proof="not in the sample config (no instance profile)"),
    Grant("EncryptWithKey", "kms_key_id: the builder's encrypted root volume and so the AMI's", BAKE,
          EBS_KMS_ACTIONS, _kms, when=lambda s: bool(s.kms_keys),
          proof="unproven: moto does not call KMS for an encrypted volume"),
    # --- cache = "data-volume" (bake/steps/data_volume.py): the data volume's snapshot ------------
    Grant("CacheSnapshot", "bake/steps/data_volume.py: CreateSnapshot of the builder's own data volume", BAKE,
          ("ec2:CreateSnapshot",), _ec2("volume/*"), TOOL_TAGGED, when=lambda s: s.data_volume,
          proof="not in the sample config (no data-volume pool)"),
    Grant("CacheSnapshotCreate", "bake/steps/data_volume.py: the snapshot, created with the tool's tags", BAKE,
          ("ec2:CreateSnapshot",), lambda s: _snapshots(s), TOOL_TAGGING, when=lambda s: s.data_volume,
          proof="not in the sample config (no data-volume pool)"),
    Grant("TagCacheSnapshot", "bake/steps/data_volume.py: CreateSnapshot's TagSpecifications", BAKE, ("ec2:CreateTags",),
          lambda s: _snapshots(s), {"StringEquals": {"ec2:CreateAction": "CreateSnapshot", **TOOL_TAGGING["StringEquals"]}},
          when=lambda s: s.data_volume, proof="not in the sample config (no data-volume pool)"),
    Grant("CopyCacheSnapshot", "bake/steps/cache_distribute.py: CopySnapshot, called in the copy's region "
          "(authorized on the source snapshot and on the copy)", BAKE, ("ec2:CopySnapshot",),
          lambda s: _snapshots(s, s.everywhere), when=lambda s: bool(s.cache_copy_regions),
          proof="not in the sample config (no data-volume pool)"),
    Grant("TagCacheCopies", "bake/steps/cache_distribute.py: each copy gets the original's tags from CopySnapshot's "
          "TagSpecifications", BAKE, ("ec2:CreateTags",), lambda s: _snapshots(s, s.cache_copy_regions),
          {"StringEquals": {"ec2:CreateAction": "CopySnapshot", **TOOL_TAGGING["StringEquals"]}},
          when=lambda s: bool(s.cache_copy_regions), proof="not in the sample config (no data-volume pool)"),
    Grant("Describe", "bake/build.py, bake/steps/data_volume.py: the lock's cache snapshot, reuse by fingerprint, "
          "the wait until completed", ("plan", "bake"), ("ec2:DescribeSnapshots",), lambda s: ANY,
          when=lambda s: s.data_volume, proof="not in the sample config (no data-volume pool)"),
    # --- [distribute]: copies in other regions, sharing (bake/steps/distribute.py) -------------------
    Grant("CopyImage", "bake/steps/distribute.py: CopyImage, called in the copy's region (authorized on the source "
          "AMI and on the new AMI and its snapshots)", BAKE, ("ec2:CopyImage",),
          lambda s: _images(s, s.everywhere) + _snapshots(s, s.image_copy_regions),
          when=lambda s: bool(s.image_copy_regions), proof="bake"),
    Grant("TagCopies", "bake/steps/distribute.py: each copy and its snapshots get the original's tags from "
          "CopyImage's TagSpecifications", BAKE, ("ec2:CreateTags",),
          lambda s: _images(s, s.image_copy_regions) + _snapshots(s, s.image_copy_regions), ON_COPY,
          when=lambda s: bool(s.image_copy_regions),
          proof="unproven: AWS authorizes a CopyImage's TagSpecifications as ec2:CreateTags (EC2 API reference, "
                "CopyImage); moto checks the CopyImage action only"),
    Grant("EncryptCopiesWithKey", "[distribute] kms_key_ids: each encrypted copy's key, in its region", BAKE,
          EBS_KMS_ACTIONS, _copy_kms, when=lambda s: bool(s.copy_kms_keys),
          proof="unproven: moto's CopyImage ignores Encrypted and KmsKeyId and calls no KMS"),
    Grant("ShareImages", "bake/steps/distribute.py: launch permission on the AMI and its copies", BAKE,
          ("ec2:ModifyImageAttribute",), lambda s: _images(s, s.everywhere), TOOL_TAGGED,
          when=lambda s: s.shares, proof="bake"),
    Grant("ShareSnapshots", "bake/steps/distribute.py: create-volume permission on their snapshots for the accounts", BAKE,
          ("ec2:ModifySnapshotAttribute",), lambda s: _snapshots(s, s.everywhere), TOOL_TAGGED,
          when=lambda s: s.shares_snapshots, proof="bake"),
    Grant("Describe", "bake/build.py: ecr_regional_aliases name the image in every region of the partition",
          ("plan", "bake"), ("ec2:DescribeRegions",), lambda s: ANY, when=lambda s: s.regional_aliases,
          proof="plan, bake"),
    # --- prune and sweep (bake/lifecycle/) -------------------------------------------------------
    Grant("Describe", "bake/lifecycle/: find the tool's resources and what uses its AMIs", LIFECYCLE,
          ("ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeKeyPairs",
           "ec2:DescribeSnapshots", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
           "autoscaling:DescribeLaunchConfigurations", "ec2:DescribeFastSnapshotRestores"), lambda s: ANY,
          proof="lifecycle (prune keeps an AMI whose snapshot still has fast snapshot restore)"),
    # --- Terraform: the provider's own calls for the stack's resources (plan refreshes, deploy writes)
    # in the bake's region and every pool's node_region (Scope.stack_regions); PassRole is global.
    Grant("Describe", "terraform apply: aws_autoscaling_group waits for its capacity", DEPLOY,
          ("autoscaling:DescribeScalingActivities",), lambda s: ANY, when=lambda s: bool(s.asg_names), proof="deploy"),
    Grant("Describe", "terraform apply: aws_launch_configuration reads its AMI's root device", DEPLOY,
          ("ec2:DescribeImages",), lambda s: ANY, when=lambda s: bool(s.configuration_pools), proof="deploy"),
    Grant("LaunchTemplates", "aws_launch_template: created, then a new version per AMI", DEPLOY,
          ("ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"),
          _stack_ec2("launch-template/*"), when=lambda s: bool(s.launch_modes & {"template", "nodegroup"}), proof="deploy"),
    Grant("TagTemplatesOnCreate", "aws_launch_template: its tags go with CreateLaunchTemplate (TagSpecifications)",
          DEPLOY, ("ec2:CreateTags",), _stack_ec2("launch-template/*"), ON_CREATE_TEMPLATE,
          when=lambda s: bool(s.launch_modes & {"template", "nodegroup"}),
          proof="unproven by moto, which checks the CreateLaunchTemplate action only; AWS authorizes a creating "
                "call's tags as ec2:CreateTags, which the evaluation proof shows (tests/iam/authz.py)"),
    Grant("GroupsLaunchTags", "a group given a launch template that tags its instances and volumes",
          DEPLOY, ("ec2:CreateTags",), _stack_ec2("instance/*", "volume/*"), ON_LAUNCH,
          when=lambda s: bool(s.asg_names) and "template" in s.launch_modes,
          proof="unproven by moto, which checks neither; AWS lists it for CreateAutoScalingGroup with a launch "
                "template whose tag specifications tag instances and volumes ('Amazon EC2 Auto Scaling API "
                "permissions'), which the evaluation proof shows (tests/iam/authz.py)"),
    Grant("LaunchConfigurations", "aws_launch_configuration: created before the one it replaces is deleted",
          DEPLOY, ("autoscaling:CreateLaunchConfiguration", "autoscaling:DeleteLaunchConfiguration"),
          lambda s: [a for pool in s.configuration_pools
                     for a in s.arns("autoscaling", f"launchConfiguration:*:launchConfigurationName/{pool}-*",
                                     regions=s.stack_regions)],
          when=lambda s: bool(s.configuration_pools), proof="deploy"),
    Grant("Groups", "aws_autoscaling_group: created (or imported by adopt), switched to the new launch source",
          DEPLOY, ("autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"),
          lambda s: [a for n in s.asg_names
                     for a in s.arns("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{n}", regions=s.stack_regions)],
          when=lambda s: bool(s.asg_names), proof="deploy"),
    Grant("GroupsLaunch", "AWS checks that whoever gives a group a launch template may launch from it",
          DEPLOY, ("ec2:RunInstances",),
          lambda s: _images(s, s.stack_regions) + _stack_ec2("launch-template/*", "instance/*", "volume/*",
                                                             "network-interface/*", "subnet/*", "security-group/*")(s),
          when=lambda s: bool(s.asg_names) and "template" in s.launch_modes,
          proof="unproven: moto does not check it (AWS: 'Launch template support' in the EC2 Auto Scaling guide)"),
    Grant("Nodegroups", "aws_eks_node_group: created on the pool's launch template, updated to each new version",
          DEPLOY, ("eks:CreateNodegroup", "eks:DescribeNodegroup", "eks:UpdateNodegroupVersion",
                   "eks:UpdateNodegroupConfig"), _nodegroups, when=lambda s: bool(s.nodegroups), proof=NODEGROUP_PROOF),
    Grant("Nodegroups", "terraform plan: refreshing the node groups", ("plan",), ("eks:DescribeNodegroup",),
          _nodegroups, when=lambda s: bool(s.nodegroups), proof=NODEGROUP_PROOF),
    Grant("FastSnapshotRestores", "aws_ebs_fast_snapshot_restore: enabled on the current AMI's snapshots, disabled "
          "on the replaced AMI's", DEPLOY, ("ec2:EnableFastSnapshotRestores", "ec2:DisableFastSnapshotRestores"),
          lambda s: _snapshots(s), TOOL_TAGGED, when=lambda s: s.fast_snapshot_restore, proof="deploy"),
    Grant("Describe", "aws_ebs_fast_snapshot_restore: its state (refresh, and the wait until enabled)",
          ("plan", "deploy"), ("ec2:DescribeFastSnapshotRestores",), lambda s: ANY,
          when=lambda s: s.fast_snapshot_restore, proof="plan, deploy"),
    Grant("PublishParameter", "aws_ssm_parameter: [distribute] ssm_parameter in each region, written and read back",
          DEPLOY, ("ssm:PutParameter", "ssm:GetParameter", "ssm:ListTagsForResource"),
          _published, when=lambda s: bool(s.published_parameters), proof="deploy"),
    Grant("PublishParameter", "aws_ssm_parameter: the parameter's tags (the pool's, at least bake:pool) go with PutParameter",
          DEPLOY, ("ssm:AddTagsToResource",), _published, when=lambda s: bool(s.published_parameters),
          proof="unproven: AWS authorizes a PutParameter's Tags as ssm:AddTagsToResource too (CloudFormation guide, "
                "AWS::SSM::Parameter); moto checks the PutParameter action only"),
    Grant("ReadParameter", "terraform plan: refreshing the published parameters", PLAN,
          ("ssm:GetParameter", "ssm:ListTagsForResource"), _published,
          when=lambda s: bool(s.published_parameters), proof="plan"),
    Grant("Describe", "aws_ssm_parameter: the provider reads a parameter's tier and policies by name",
          ("plan", "deploy"), ("ssm:DescribeParameters",), lambda s: ANY,
          when=lambda s: bool(s.published_parameters), proof="plan, deploy"),
    Grant("Describe", "aws_ssm_parameter of data type aws:ec2:image: SSM checks the AMI as the caller",
          DEPLOY, ("ec2:DescribeImages",), lambda s: ANY, when=lambda s: bool(s.published_parameters),
          proof="unproven: AWS requires it (Systems Manager guide, 'Native parameter support for Amazon Machine "
                "Image IDs'); moto checks the AMI itself, as no caller"),
    Grant("NodegroupPassRole", "aws_eks_node_group: the node role", DEPLOY, ("iam:PassRole",), _node_roles,
          PASS_TO_EKS, when=lambda s: "nodegroup" in s.launch_modes, proof="not in the sample config"),
    Grant("StateRead", "[state] backend = \"s3\": terraform reads the state", ("plan", "deploy"),
          ("s3:ListBucket",), _state_bucket, when=_has_s3_state, proof="unproven here: the stack's tests keep local state"),
    Grant("StateObjects", "[state] backend = \"s3\": read the state (plan runs terraform plan -lock=false)",
          ("plan", "deploy"), ("s3:GetObject",), _state_objects, when=_has_s3_state,
          proof="unproven here: the stack's tests keep local state"),
    Grant("StateObjects", "[state] backend = \"s3\": write the state and its lock file", DEPLOY,
          ("s3:PutObject", "s3:DeleteObject"), _state_objects, when=_has_s3_state,
          proof="unproven here: the stack's tests keep local state"),
    Grant("StateLockTable", "[state] dynamodb_table: the state lock (plan runs -lock=false)", DEPLOY,
          ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"), _state_table,
          when=lambda s: s.state_lock_table is not None, proof="unproven here: the stack's tests keep local state"),
]
