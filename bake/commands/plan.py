"""``python -m bake plan``: what build would do, without launching anything."""

from __future__ import annotations

import argparse
import json

from bake.commands._common import add_config_args, load
from bake.commands.context import Context
from bake.errors import ExitCode
from bake.progress import NullReporter


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show the resolved base AMI, image digests, fingerprint and bake/skip per pool")
    add_config_args(p)
    p.add_argument("--pool", action="append", metavar="NAME", help="only this pool (repeatable)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.build import Baker

    config, lock = load(args)
    with NullReporter() as reporter:
        plans = Baker(config, lock, reporter, cancel=ctx.cancel).plan(args.pool)
    if args.json:
        print(json.dumps({"pools": [p.as_dict() for p in plans]}, indent=2))
        return ExitCode.OK
    for p in plans:
        print(f"pool {p.pool.name}: {p.action.upper()} ({p.reason})")
        print(f"  base AMI     {p.base_ami}  (from {p.pool.base_ami})")
        print(f"  fingerprint  {p.fingerprint}")
        if p.ami_id:
            print(f"  AMI          {p.ami_id}")
        for i in p.images:
            print(f"  image        {i.ref.original}  {i.digest}")
    return ExitCode.OK
