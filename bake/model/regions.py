"""The AWS Region names a ``[pools.NAME.distribute]`` table may name.

A list, not a pattern: ``eu-west-9`` matches any pattern and would only fail, much later, as
a copy that cannot start. The names are the regions of the ``aws``, ``aws-us-gov`` and ``aws-cn``
partitions in botocore's ``data/endpoints.json`` (checked against botocore 1.x installed here,
2026-11-30; ``tests/unit/test_distribute.py`` compares them). Not read from botocore at run
time: the rollout side never imports it. A Region AWS opens later is one line here.
"""

from __future__ import annotations

import re

REGIONS = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
    "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "eu-south-1", "eu-south-2", "eu-north-1",
    "il-central-1", "me-south-1", "me-central-1", "af-south-1",
    "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1",
})


# The partition of a Region, for the side that never imports botocore (the rollout, the
# model): botocore's partitions.json patterns in the order they must be tried ("aws" last: its
# pattern also matches us-gov-* and us-iso-*). The AMI side reads botocore itself
# (bake.partitions); tests/unit/test_partitions.py checks this table against it.
PARTITIONS = (
    ("aws-cn", r"cn-\w+-\d+"),
    ("aws-us-gov", r"us-gov-\w+-\d+"),
    ("aws-iso", r"us-iso-\w+-\d+"),
    ("aws-iso-b", r"us-isob-\w+-\d+"),
    ("aws-iso-e", r"eu-isoe-\w+-\d+"),
    ("aws-iso-f", r"us-isof-\w+-\d+"),
    ("aws-eusc", r"eusc-(de)-\w+-\d+"),
    ("aws", r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+"),
)


def partition_of(region: str) -> str:
    return next((name for name, pattern in PARTITIONS if re.fullmatch(pattern, region)), "aws")
