"""``python -m bake iam-policy --role ROLE``: the IAM policy one use of the tool needs, scoped
to bake.toml (see bake/iam/ and docs/iam.md)."""

from __future__ import annotations

import argparse
import sys

from bake.commands._common import add_config_arg
from bake.commands.context import Context
from bake.iam.grants import ROLES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("iam-policy", help="print the IAM policy a role needs for this config (JSON)",
                       description="Print the least-privilege IAM policy document for one use of the tool, "
                                   "scoped to the regions (the copies' included), accounts, parameters, repositories, subnets, "
                                   "profiles and keys bake.toml names. See docs/iam.md.")
    p.add_argument("--role", required=True, choices=ROLES,
                   help="plan: bake plan/review/adopt, terraform plan; bake: bake build; "
                        "deploy: terraform apply; lifecycle: prune, sweep")
    add_config_arg(p)
    p.add_argument("--account", action="append", metavar="ID",
                   help="the AWS account(s) the policy is for (repeatable; default: [provider] "
                        "allowed_account_ids, else any)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.iam.policy import render
    from bake.iam.scope import scope_of
    from bake.model.workspace import Workspace

    sys.stdout.write(render(args.role, scope_of(Workspace.of(args).config(), args.account)))
    return 0
