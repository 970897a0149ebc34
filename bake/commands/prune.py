"""``python -m bake prune``: deregister a pool's old AMIs and delete their snapshots."""

from __future__ import annotations

import argparse
import sys

from bake.commands._common import add_account_args, remove_or_fail
from bake.commands.context import Context
from bake.errors import ExitCode, UsageError
from bake.model.config import BakeConfig
from bake.model.lock import LockData
from bake.model.workspace import Workspace
from bake.tags import KEY_POOL


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="deregister this tool's AMIs beyond the N newest per pool (dry run unless --yes)",
        description=(
            "Per pool, deregister the AMIs this tool built beyond the N newest and delete their snapshots. "
            "Never one that the lock names (current, pin, history within N), that a launch template "
            "version or launch configuration uses, that a non-terminated instance runs, or whose snapshot "
            "still has fast snapshot restore enabled. "
            "Without --yes only shows what it would remove and why it keeps the rest."
        ),
    )
    p.add_argument("--keep", type=int, default=3, metavar="N", help="AMIs to keep per pool (default: %(default)s)")
    p.add_argument("--pool", action="append", metavar="NAME", help="only this pool (repeatable)")
    p.add_argument("--yes", action="store_true", help="really deregister and delete (default: dry run)")
    add_account_args(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake import aws
    from bake.lifecycle import common

    if args.keep < 0:
        raise UsageError("--keep must be 0 or more")
    ws = Workspace.of(args)
    config = ws.optional_config()
    if not ws.lock_path.exists():
        sys.stderr.write(f"bake: warning: {ws.lock_path} does not exist: no AMI is protected by the lock\n")
    lock = ws.lock().read()
    region = ws.aws_region(config, aws.chain_region)
    regions = common.regions(region, config, explicit=bool(args.region))
    for i, where in enumerate(regions):
        if len(regions) > 1:
            print(("\n" if i else "") + f"== {where}")
        _prune_region(args, ctx, config, lock, where)
    return ExitCode.OK


def _prune_region(args: argparse.Namespace, ctx: Context, config: BakeConfig | None, lock: LockData,
                  region: str) -> None:
    """One region: its AMIs and copies, checked against that region's templates, configurations
    and instances (and the lock, which names every region's)."""
    from bake.lifecycle import common
    from bake.aws.images import tool_images
    from bake.lifecycle.prune import apply_prune, images_in_use, plan_prune, tool_cache_snapshots

    ec2, autoscaling = common.clients(region, "ec2", "autoscaling")

    images = tool_images(ec2) + tool_cache_snapshots(ec2)  # a data-volume pool's caches are snapshots
    if args.pool:
        known = set(config.pools if config else ()) | set(lock.pools)
        known |= {i.tags[KEY_POOL] for i in images if KEY_POOL in i.tags}
        unknown = [p for p in args.pool if p not in known]
        if unknown:
            raise UsageError(f"no pool named {', '.join(map(repr, unknown))} in the config, the lock or the AMIs' tags")
    plan = plan_prune(images, lock, images_in_use(ec2, autoscaling, images), keep=args.keep, pools=args.pool)

    if not plan.candidates:
        print(f"no AMIs built by this tool in {region}" + (f" for {', '.join(args.pool)}" if args.pool else ""))
        return
    rows = [[c.pool, c.ami_id, c.created, "remove" if c.remove else "keep", c.why] for c in plan.candidates]
    print(common.table(["pool", "ami", "created", "action", "why"], rows))
    removals = plan.removals
    snaps = sum(len(c.snapshots) for c in removals)
    if not args.yes:
        print(f"\ndry run: would deregister {len(removals)} AMI(s) and delete {snaps} snapshot(s); pass --yes to do it")
        return
    if not removals:
        print("\nnothing to prune")
        return
    remove_or_fail("prune", region, lambda reporter: apply_prune(ec2, plan, reporter, ctx.cancel))
    print(f"\nderegistered {len(removals)} AMI(s) and deleted their snapshots")
