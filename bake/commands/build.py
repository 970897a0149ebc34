"""``python -m bake build``: bake the pools that need it and record them in the lock."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bake.commands._common import add_config_args, load
from bake.commands.context import Context
from bake.errors import ExitCode
from bake.progress import make_reporter


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="bake AMIs for the pools whose images changed (the default command)")
    add_config_args(p)
    p.add_argument("--pool", action="append", metavar="NAME", help="only this pool (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON event stream on stdout instead of progress")
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="pools baked at once (default: %(default)s)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another bake of the same pool to finish (default: fail at once)")
    p.add_argument("--keep-on-failure", action="store_true",
                   help="leave a failed bake's builder, security group and key pair running for debugging, "
                        "write its private key (0600) to the run directory and print how to log in; "
                        "`sweep --yes` removes them. An interrupt still removes everything")
    p.add_argument("--run-dir", metavar="DIR", type=Path,
                   help="parent of the run directories (default: .bake-runs beside the lock file)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.build import Baker

    config, lock = load(args)
    with make_reporter(args.json) as reporter:
        baker = Baker(config, lock, reporter, cancel=ctx.cancel, lock_wait=args.wait,
                      keep_on_failure=args.keep_on_failure, run_root=args.run_dir)
        try:
            outcomes = baker.build(args.pool, parallel=max(1, args.parallel))
        finally:
            _name_run_dir(baker, reporter)
        failed = [o for o in outcomes if not o.ok]
        summary = {
            "pools": [
                {"pool": o.pool, "action": o.action, "ami_id": o.ami_id, "error": o.error, "seconds": round(o.seconds, 1)}
                for o in outcomes
            ]
        }
        reporter.emit("run.done", _summary_line(outcomes), data=summary)
    if not args.json:
        for o in outcomes:
            state = "FAILED" if o.error else o.action
            print(f"{o.pool}\t{state}\t{o.ami_id or '-'}", file=sys.stdout)
    return ExitCode.BAKE_FAILED if failed else ExitCode.OK


def _name_run_dir(baker: object, reporter: object) -> None:
    run_dir = getattr(baker, "run_dir", None)
    if run_dir is not None and run_dir.has_output():
        reporter.emit("run.dir", f"remote output and kept keys of this run: {run_dir.path}",  # type: ignore[attr-defined]
                      data={"run_dir": str(run_dir.path)})


def _summary_line(outcomes: list) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = "failed" if o.error else o.action
        counts[key] = counts.get(key, 0) + 1
    return "done: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


