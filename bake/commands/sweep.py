"""``python -m bake sweep``: remove what builds that died without cleaning up left behind."""

from __future__ import annotations

import argparse

from bake.commands._common import add_account_args, remove_or_fail
from bake.commands.context import Context
from bake.errors import ExitCode
from bake.model.workspace import Workspace


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="find and remove a killed build's leftovers by their tags (dry run unless --yes)",
        description=(
            "Find the instances, security groups, key pairs, unfinished AMIs and orphaned snapshots "
            "that this tool tagged and that belong to a run older than --older-than, and remove them "
            "(oldest first: instances, then groups, key pairs, AMIs, snapshots). Available AMIs and "
            "anything the lock names are never touched; a build still running is left alone."
        ),
    )
    p.add_argument("--older-than", default="2h", metavar="DURATION",
                   help="only runs started longer ago than this: 90m, 2h, 1d (default: %(default)s)")
    p.add_argument("--yes", action="store_true", help="really remove them (default: dry run)")
    add_account_args(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake import aws
    from bake.lifecycle import common

    common.parse_duration(args.older_than)  # a bad duration fails before any AWS call
    ws = Workspace.of(args)
    config = ws.optional_config()
    lock = ws.lock().read()
    region = ws.aws_region(config, aws.chain_region)
    protected = {ami: str(use) for ami, use in lock.ami_ids().items()}
    regions = common.regions(region, config, explicit=bool(args.region))
    for i, where in enumerate(regions):
        if len(regions) > 1:
            print(("\n" if i else "") + f"== {where}")
        _sweep_region(args, ctx, where, protected)
    return ExitCode.OK


def _sweep_region(args: argparse.Namespace, ctx: Context, region: str, protected: dict[str, str]) -> None:
    """One region: a killed bake's copies there carry its run's tags like everything else."""
    from bake.lifecycle import common
    from bake.lifecycle.sweep import describe, find_leftovers, remove_leftovers

    older_than = common.parse_duration(args.older_than)
    (ec2,) = common.clients(region, "ec2")
    plan = find_leftovers(ec2, older_than, protected_amis=protected)
    headers = ["kind", "id", "name", "pool", "run", "age", "state"]
    if plan.fresh:
        print(f"left alone, started less than {args.older_than} ago (a build may still be running):")
        print(common.table(headers, [describe(r, plan.now) for r in plan.fresh]))
        print()
    if not plan.leftovers:
        print(f"no leftovers older than {args.older_than} in {region}")
        return
    print(f"leftovers older than {args.older_than} in {region}, in removal order:")
    print(common.table(headers, [describe(r, plan.now) for r in plan.leftovers]))
    if not args.yes:
        print(f"\ndry run: would remove {len(plan.leftovers)} resource(s); pass --yes to remove them")
        return
    remove_or_fail("sweep", region, lambda reporter: remove_leftovers(ec2, plan, reporter, ctx.cancel))
    print(f"\nremoved {len(plan.leftovers)} resource(s)")
