"""``python -m bake plan``: what build would do, without launching anything.

``--check`` makes it a gate for the pipeline: exit 4 when any pool would bake or reuse.
"""

from __future__ import annotations

import argparse
import json

from bake.commands._common import add_config_args, load
from bake.commands.context import Context
from bake.errors import ExitCode, UsageError
from bake.fsr_quota import fsr_pools, refusal
from bake.first_start import human_bytes
from bake.progress import NullReporter


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan", help="show the resolved base AMI, image digests, fingerprint and bake/skip per pool",
        epilog="Exit codes: 0 (with --check: every pool current), 1 failed, 2 usage or config error (also: "
               "the rollout would exceed fast snapshot restore's 5 snapshots per Region), "
               "4 (--check only) a pool would bake or reuse.",
    )
    add_config_args(p)
    p.add_argument("--pool", action="append", metavar="NAME", help="only this pool (repeatable)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 4 when any pool would bake or reuse (a tag moved, a new base AMI, a lost lock "
                        "entry), naming the pools and why; 0 when every pool is skipped or pinned")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.build import Baker
    from bake.check import check, summary

    config, lock = load(args)
    with NullReporter() as reporter:
        plans = Baker(config, lock, reporter, cancel=ctx.cancel).plan(args.pool)
    locked = lock.read()
    # Before any output: a rollout of these plans would fail at apply on AWS (bake.fsr_quota).
    if why := refusal(fsr_pools(config, locked, plans)):
        raise UsageError(why)
    checks = check(plans, locked)
    stale = args.check and not all(c.current for c in checks)
    code = ExitCode.NOT_CURRENT if stale else ExitCode.OK
    if args.json:
        doc: dict = {"pools": [{**c.plan.as_dict(), "changes": list(c.changes)} for c in checks]}
        if args.check:
            doc["current"] = not stale
        print(json.dumps(doc, indent=2))
        return code
    for c in checks:
        p = c.plan
        print(f"pool {p.pool.name}: {p.action.upper()} ({p.reason})")
        for change in c.changes:
            print(f"  changed      {change}")
        print(f"  base AMI     {p.base_ami}  (from {p.pool.base_ami})")
        print(f"  fingerprint  {p.fingerprint}")
        if p.ami_id:
            print(f"  AMI          {p.ami_id}")
        for i in p.images:
            size = f"  ({p.image_sizes[i.ref.original] / 2**20:.0f} MiB compressed)" if i.ref.original in p.image_sizes else ""
            print(f"  image        {i.ref.original}  {i.digest}{size}")
            if i.ref.original in p.aliases:
                print(f"    aliases    {len(p.aliases[i.ref.original])}: {', '.join(p.aliases[i.ref.original][:3])}"
                      f"{', …' if len(p.aliases[i.ref.original]) > 3 else ''}")
        print(f"  compressed   {human_bytes(p.compressed_bytes)} in {len(p.images)} image(s), the layers a pull downloads")
        if p.existing and p.existing.cache_bytes is not None:
            print(f"  cache        {human_bytes(p.existing.cache_bytes)} on the AMI's disk (measured by the bake of {p.ami_id})")
        if p.first_read:
            for line in p.first_read.lines():
                print(f"  {line}")
        if p.disk:
            print(f"  builder disk {p.disk.gib} GiB = {p.disk.reason}")
        elif p.action == "bake" and p.pool.root_volume_size is not None:
            print(f"  builder disk {p.pool.root_volume_size} GiB (root_volume_size)")
        for note in p.notes:
            print(f"  note         {note}")
        for w in p.warnings:
            print(f"  WARNING      {w}")
    if args.check:
        print(summary(checks))
    return code
