"""Synthesized stacks of every launch mode, built in-process with cdktf's Testing API: the
constructs' tests (tests/rollout/test_nodepool_constructs.py) read them, and checkov scans them
(tests/rollout/test_checkov.py). The provider bindings take 8-25 s to import, so one session
fixture (tests/rollout/conftest.py, ``synth``) builds them once.
"""

from __future__ import annotations

from typing import Any

from bake.model.rollout import (
    Adopt,
    AsgSettings,
    BlockDevice,
    InstanceRefresh,
    NodegroupSettings,
    ProviderSettings,
    StateSettings,
    Taint,
)
from nodepools.props import InstanceProps, NodePoolProps, StackProps

USER_DATA = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B--\n"


def _instance(**kw: Any) -> InstanceProps:
    base: dict[str, Any] = dict(instance_type="m6i.large", security_group_ids=("sg-0aaa", "sg-0bbb"),
                                iam_instance_profile="eks-nodes", user_data=USER_DATA, key_name="ops",
                                root_volume_size=80, root_volume_type="gp3", root_volume_encrypted=True,
                                tags={"bake:pool": "x", "team": "a"})
    base.update(kw)
    return InstanceProps(**base)


POOLS = (
    NodePoolProps(
        name="general", ami_id="ami-0new0000000000001", launch="template", instance=_instance(),
        asg=AsgSettings(min_size=2, max_size=10, desired_capacity=3, subnet_ids=["subnet-a", "subnet-b"],
                        tags={"k8s.io/cluster-autoscaler/enabled": "true"}, health_check_type="EC2"),
        tags={"bake:pool": "general"},
    ),
    NodePoolProps(
        name="rolling", ami_id="ami-0new0000000000002", launch="template",
        instance=_instance(iam_instance_profile="arn:aws:iam::123456789012:instance-profile/nodes", user_data=None),
        asg=AsgSettings(availability_zones=["us-east-1a"], instance_refresh=InstanceRefresh(
            min_healthy_percentage=75, instance_warmup=300, checkpoint_percentages=[20, 100],
            checkpoint_delay=900, auto_rollback=True, skip_matching=True)),
    ),
    NodePoolProps(
        name="legacy", ami_id="ami-0new0000000000003", launch="configuration", instance=_instance(),
        asg=AsgSettings(min_size=1, max_size=4, subnet_ids=["subnet-a"]),
        tags={"bake:pool": "legacy"},
    ),
    NodePoolProps(
        name="1gpu", ami_id="ami-0new0000000000004", launch="nodegroup", instance=_instance(),
        nodegroup=NodegroupSettings(cluster_name="prod", node_role_arn="arn:aws:iam::123456789012:role/nodes",
                                    subnet_ids=["subnet-a"], min_size=0, max_size=5, desired_size=1,
                                    max_unavailable=2, labels={"gpu": "true"},
                                    taints=[Taint(key="nvidia.com/gpu", effect="NO_SCHEDULE")]),
        tags={"bake:pool": "1gpu"},
    ),
)


# A node group pool whose new nodes read the cache fast: a provisioned initialization rate on the
# root volume and on the block device made from a snapshot, fast snapshot restore per snapshot x zone.
FIRST_START = NodePoolProps(
    name="fast", ami_id="ami-0new0000000000005", launch="nodegroup",
    instance=_instance(volume_initialization_rate=250, block_devices=(
        BlockDevice(device_name="/dev/xvdb", snapshot_id="snap-0cache000000000001"),
        BlockDevice(device_name="/dev/xvdc", volume_size=50))),
    nodegroup=NodegroupSettings(cluster_name="prod", node_role_arn="arn:aws:iam::123456789012:role/nodes",
                                subnet_ids=["subnet-a"]),
    snapshot_ids=("snap-0root0000000000001", "snap-0cache000000000001"),
    fast_snapshot_restore_zones=("eu-west-1a", "eu-west-1b"),
)


# A pool whose AMI is copied to another region, with its SSM parameter written in both.
COPIES = NodePoolProps(
    name="web", ami_id="ami-0new0000000000006", launch="template", instance=_instance(),
    asg=AsgSettings(availability_zones=["eu-west-1a"]),
    ssm_parameter="/eks/nodes/web", ssm_values={"eu-west-1": "ami-0new0000000000006", "us-east-1": "ami-0copy000000000006"},
)

# An Auto Scaling group taken over by `bake adopt`: imported (a top-level import block), then
# switched to the pool's launch template.
ADOPTED = NodePoolProps(
    name="taken", ami_id="ami-0new0000000000007", launch="template", instance=_instance(),
    asg=AsgSettings(name="legacy-group", subnet_ids=["subnet-a"]),
    adopt=Adopt(asg_name="legacy-group", source="launch_configuration", launch_configuration="legacy-lc",
                source_ami="ami-0old0000000000007", adopted_at="2026-11-01T00:00:00Z"),
)

# One stack per launch mode (checkov's scan names the mode of each finding).
MODES = {
    "template": (POOLS[0],),
    "instance_refresh": (POOLS[1],),
    "configuration": (POOLS[2],),
    "nodegroup": (POOLS[3],),
    "fast_snapshot_restore": (FIRST_START,),
    "copies": (COPIES,),
    "adopted": (ADOPTED,),
}


def synthesize() -> dict[str, str]:
    """Stack name -> its synthesized JSON (cdk.tf.json's text)."""
    from cdktf import Testing

    from nodepools.stack import NodePoolsStack

    out = {}
    app = Testing.app()
    out["main"] = Testing.synth(NodePoolsStack(app, "nodepools", StackProps(
        region="eu-west-1", pools=POOLS, provider=ProviderSettings(default_tags={"owner": "infra"}))))
    out["s3"] = Testing.synth(NodePoolsStack(Testing.app(), "nodepools", StackProps(
        region="eu-west-1", pools=POOLS[:1],
        state=StateSettings(backend="s3", bucket="tfstate", key="nodepools.tfstate", dynamodb_table="locks",
                            use_lockfile=True))))
    out["local"] = Testing.synth(NodePoolsStack(Testing.app(), "nodepools", StackProps(
        region="eu-west-1", pools=())))
    out["first_start"] = Testing.synth(NodePoolsStack(Testing.app(), "nodepools", StackProps(
        region="eu-west-1", pools=(FIRST_START,))))
    for mode, pools in MODES.items():
        out[f"mode:{mode}"] = Testing.synth(NodePoolsStack(Testing.app(), "nodepools", StackProps(
            region="eu-west-1", pools=pools)))
    return out


