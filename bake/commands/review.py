"""``python -m bake review``: a pull-request comment from a Terraform plan and the lock change."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bake.commands.context import Context
from bake.errors import ExitCode, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="render a PR comment (Markdown or JSON) from `terraform show -json` and the lock change",
        description=(
            "Per pool: AMI old -> new, base AMI, images added/removed/changed, and whether the nodes are "
            "replaced now (instance refresh) or only new nodes get the AMI; the plan's counts with "
            "replacements and destroys flagged first; every resource change in a collapsed block. "
            "The Markdown starts with a hidden marker so CI can update one sticky comment."
        ),
    )
    p.add_argument("--plan", required=True, metavar="PLAN.json", help="`terraform show -json PLAN` output ('-': stdin)")
    p.add_argument("--base-lock", metavar="FILE",
                   help="the lock file at the PR's base (missing or empty: every pool is new)")
    p.add_argument("--lock", default="amis.lock.json", metavar="FILE", help="the lock file of the PR (default: %(default)s)")
    p.add_argument("--format", choices=["markdown", "json"], default="markdown", help="output format (default: %(default)s)")
    p.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--config", metavar="FILE",
                   help="bake.toml: adds each [pools.NAME.karpenter] pool's EC2NodeClass diff (`bake karpenter`)")


def _read_lock(path: str | None):  # noqa: ANN202
    from bake.model.lock import LockData, LockFile

    if not path or not Path(path).exists() or not Path(path).read_text(encoding="utf-8").strip():
        return LockData()  # `git show base:amis.lock.json > f || true` leaves an empty file
    return LockFile(path).read()


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.review import build_review, render_json, render_markdown

    try:
        text = sys.stdin.read() if args.plan == "-" else Path(args.plan).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{args.plan}: cannot read the plan: {e.strerror}") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{args.plan}: not JSON ({e}); pass `terraform show -json PLANFILE` output") from None
    config = None
    if args.config:
        from bake.model.config import load_config

        config = load_config(args.config)
    review = build_review(plan, _read_lock(args.base_lock), _read_lock(args.lock), config)
    out = render_json(review) if args.format == "json" else render_markdown(review)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return ExitCode.OK
