"""``python -m bake rollback POOL [--to AMI_ID] | --unpin``."""

from __future__ import annotations

import argparse
import sys

from bake.commands._common import add_config_args, load
from bake.commands.context import Context
from bake.rollback import rollback, unpin


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rollback",
        help="make an earlier AMI of a pool current again (and pin it), or --unpin",
        description=(
            "Make the pool's previous AMI (or --to AMI_ID from its history) current in the lock "
            "file and pin the pool so `build` leaves it alone until its images change. "
            "Roll out with `cdktf diff` / `cdktf deploy` (or terraform plan/apply)."
        ),
    )
    p.add_argument("pool", metavar="POOL")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--to", metavar="AMI_ID", help="an AMI from the pool's history (default: the previous one)")
    what.add_argument("--unpin", action="store_true", help="release the pool's pin; change nothing else")
    add_config_args(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    config, lock = load(args)
    config.select([args.pool])  # an unknown pool is a usage error naming the pools there are
    if args.unpin:
        pin = unpin(lock, args.pool)
        if pin is None:
            print(f"pool {args.pool}: not pinned; nothing to do")
        else:
            print(f"pool {args.pool}: unpinned (was pinned on {pin.ami_id}, {pin.reason}, {pin.at}); "
                  "the next build may bake it again")
        return 0
    r = rollback(lock, args.pool, args.to)
    print(f"pool {r.pool}: rolled back from {r.from_ami} to {r.to_ami} in {lock.path}; pinned "
          f"(build skips it until its images change; `python -m bake rollback {r.pool} --unpin` releases it)")
    sys.stdout.write("roll it out: cdktf diff && cdktf deploy (or terraform plan/apply on cdktf.out)\n")
    return 0
