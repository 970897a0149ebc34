"""The AWS partition of a Region, from botocore's own data (the AMI side only).

``aws``, ``aws-cn``, ``aws-us-gov``, the ISO partitions (``aws-iso``, ``aws-iso-b``,
``aws-iso-e``, ``aws-iso-f``) and any botocore learns later: an ARN written for the wrong one
grants nothing. botocore's ``partitions.json`` lists each partition's Regions and a pattern for
the ones it does not list yet (older botocore: ``endpoints.json``, the same fields). The rollout
side never imports botocore: it has ``bake.model.regions.partition_of``, a small table that
tests/unit/test_partitions.py checks against this.
"""

from __future__ import annotations

import functools
import re

DEFAULT = "aws"


@functools.cache
def _partitions() -> tuple[tuple[str, frozenset[str], re.Pattern[str]], ...]:
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import create_loader

    loader = create_loader()
    try:
        data = loader.load_data("partitions")
    except DataNotFoundError:  # botocore before partitions.json
        data = loader.load_data("endpoints")
    found = [(p.get("id") or p["partition"], frozenset(p.get("regions", {})), re.compile(p["regionRegex"]))
             for p in data["partitions"]]
    # "aws"'s pattern (^(us|eu|...)-\w+-\d+$) also matches us-gov-* and us-iso-*: try it last.
    return tuple(sorted(found, key=lambda p: p[0] == DEFAULT))


def partition_of(region: str) -> str:
    """The partition ``region`` is in: listed by botocore, else matching a partition's pattern,
    else ``aws``."""
    parts = _partitions()
    for name, regions, _ in parts:
        if region in regions:
            return name
    return next((name for name, _, pattern in parts if pattern.match(region)), DEFAULT)


def names() -> list[str]:
    """Every partition botocore knows."""
    return [name for name, _, _ in _partitions()]
