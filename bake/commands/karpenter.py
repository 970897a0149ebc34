"""``python -m bake karpenter POOL... | --all [--out DIR]``: each pool's EC2NodeClass."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bake.commands._common import add_config_args, load
from bake.commands.context import Context
from bake.errors import ExitCode, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "karpenter",
        help="print each pool's Karpenter EC2NodeClass (karpenter.k8s.aws/v1) from bake.toml and the lock",
        description=(
            "An EC2NodeClass per pool: the lock's AMI (by id, or by the pool's [distribute] ssm_parameter) and its "
            "root volume with its snapshot and the pool's volume_initialization_rate, or, for a cache = "
            "\"data-volume\" pool, the stock AMI and the cache snapshot at the data device; role, subnets and "
            "security groups from [pools.NAME.karpenter]. Rerun after every bake or rollback and apply the result. "
            "Exit 2 (nothing written): an unknown pool, a pool without a [karpenter] table or without a current "
            "lock entry, or settings Karpenter cannot take together."
        ),
    )
    p.add_argument("pools", nargs="*", metavar="POOL")
    p.add_argument("--all", action="store_true", help="every pool with a [pools.NAME.karpenter] table")
    p.add_argument("--out", metavar="DIR", help="write DIR/NAME.yaml per pool instead of printing them all")
    p.add_argument("--region", metavar="REGION",
                   help="the cluster's region: the AMI's or cache snapshot's copy there ([distribute] regions) and, "
                        "for a data-volume pool, that region's stock AMI (default: the region each pool was baked in)")
    add_config_args(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.karpenter import node_classes, pools_with_node_class, render

    if bool(args.pools) == args.all:
        raise UsageError("karpenter: name the pools, or --all (not both)")
    config, lock = load(args)
    names = pools_with_node_class(config) if args.all else args.pools
    if not names:
        raise UsageError(f"{config.path}: no pool has a [pools.NAME.karpenter] table")
    # Every manifest first: a pool that fails leaves no file written.
    docs = node_classes(config, lock.read(), names, args.region)
    if args.out is None:
        sys.stdout.write(render(list(docs.values())))
        return ExitCode.OK
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for pool, doc in docs.items():
        path = out / f"{pool}.yaml"
        path.write_text(render([doc]), encoding="utf-8")
        print(f"pool {pool}: {path}")
    return ExitCode.OK
