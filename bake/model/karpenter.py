"""``[pools.NAME.karpenter]``: what an EC2NodeClass needs besides the AMI and its volumes.

``python -m bake karpenter`` (``bake/karpenter.py``) writes the node class from this table, the
pool's keys and its lock entry. Only what Karpenter's own schema has and a pool needs is here;
each key's name is Karpenter's in snake case. The checks are the CRD's rules on these fields
(karpenter.k8s.aws_ec2nodeclasses.yaml, the copy in tests/data/karpenter), so a bad value fails
at config time, naming the key, rather than at ``kubectl apply``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bake.model.base import Strict

# A Kubernetes object name (DNS-1123 subdomain), what metadata.name must be.
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Tags Karpenter sets itself and refuses in spec.tags (the CRD's rules on spec.tags).
RESTRICTED_TAGS = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim",
                   "karpenter.k8s.aws/ec2nodeclass")
RESTRICTED_TAG_PREFIX = "kubernetes.io/cluster"
Tags = Annotated[dict[str, str], Field(max_length=20)]


def restricted_tag(key: str) -> bool:
    return key in RESTRICTED_TAGS or key.startswith(RESTRICTED_TAG_PREFIX)


class _Term(Strict):
    """A selector term: by id alone, or by tags (and, for security groups, name)."""

    id: str | None = None
    tags: Tags = {}

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if any(k == "" or val == "" for k, val in v.items()):
            raise ValueError("empty tag keys or values select nothing (Karpenter refuses them)")
        return v


class SubnetTerm(_Term):
    @model_validator(mode="after")
    def _one(self) -> SubnetTerm:
        if self.id is not None and not re.match(r"^subnet-[0-9a-z]+$", self.id):
            raise ValueError(f"id {self.id!r} is not a subnet id (subnet-…)")
        if (self.id is None) == (not self.tags):
            raise ValueError("a subnet term has either id or tags (not both, not neither)")
        return self


class SecurityGroupTerm(_Term):
    name: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SecurityGroupTerm:
        if self.id is not None and not re.match(r"^sg-[0-9a-z]+$", self.id):
            raise ValueError(f"id {self.id!r} is not a security group id (sg-…)")
        if len([k for k in ("id", "name", "tags") if getattr(self, k)]) != 1:
            raise ValueError("a security group term has exactly one of id, name or tags")
        return self


class KarpenterSettings(Strict):
    """``[pools.NAME.karpenter]``."""

    # metadata.name; default: the pool's name (which must then be a Kubernetes name: no "_").
    name: str | None = None
    # The nodes' IAM identity: exactly one of a role (Karpenter makes the instance profile)
    # or an existing instance profile.
    role: str | None = None
    instance_profile: str | None = None
    subnet_selector_terms: Annotated[list[SubnetTerm], Field(min_length=1, max_length=30)]
    security_group_selector_terms: Annotated[list[SecurityGroupTerm], Field(min_length=1, max_length=30)]
    # cache = "ami" pools: select the AMI by "id" (the lock's) or by the pool's published
    # "ssm_parameter" ([distribute] ssm_parameter). Default: ssm_parameter when the pool
    # publishes one, else id. A root snapshot (for volume_initialization_rate) pins one AMI: id.
    ami_selector: Literal["id", "ssm_parameter"] | None = None
    # spec.tags, on the instances and volumes Karpenter launches (the pool's tags and bake:pool too).
    tags: dict[str, str] = {}
    # spec.userData, passed as is (nodeadm's format for AL2023, TOML for Bottlerocket).
    user_data: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 253 or not K8S_NAME.match(v)):
            raise ValueError(f"{v!r} is not a Kubernetes object name (lower-case letters, digits, '-' and '.')")
        return v

    @field_validator("role", "instance_profile")
    @classmethod
    def _not_empty(cls, v: str | None) -> str | None:
        if v == "":
            raise ValueError("must not be empty")
        return v

    @field_validator("tags")
    @classmethod
    def _restricted(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key == "" or restricted_tag(key):
                raise ValueError(f"tag {key!r}: Karpenter sets it itself and refuses it in an EC2NodeClass")
        return v

    @model_validator(mode="after")
    def _one_identity(self) -> KarpenterSettings:
        if (self.role is None) == (self.instance_profile is None):
            raise ValueError("set exactly one of role or instance_profile (Karpenter takes one identity)")
        return self
