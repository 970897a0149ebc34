"""The rollout side: CDKTF constructs that put each pool's baked AMI on its nodes.

Importing this package is cheap; ``NodePool`` and ``NodePoolsStack`` load cdktf and the AWS
provider bindings (8-25 s) on first use. The AMI side (``bake``) never imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodepools.props import InstanceProps, MissingAmiError, NodePoolProps, StackProps, stack_props

if TYPE_CHECKING:
    from nodepools.pool import NodePool
    from nodepools.stack import NodePoolsStack

__all__ = ["InstanceProps", "MissingAmiError", "NodePool", "NodePoolProps", "NodePoolsStack",
           "StackProps", "stack_props"]


def __getattr__(name: str) -> Any:
    if name == "NodePool":
        from nodepools.pool import NodePool
        return NodePool
    if name == "NodePoolsStack":
        from nodepools.stack import NodePoolsStack
        return NodePoolsStack
    raise AttributeError(f"module 'nodepools' has no attribute {name!r}")
