"""Every action in each printed policy is needed: remove it, run the role's uses, see one fail.

    flock /tmp/bake-sandbox.lock env CI=true .venv/bin/python -m tests.iam.minimality [--role ROLE]... [--action A]...
    env CI=true .venv/bin/python -m tests.iam.minimality --discover --no-bake

For each role and each action its policy holds from a proven row of bake/iam/grants.py, a fresh
IAM-enforcing moto is prepared (tests/iam/story.py), and the role's uses run as a user holding
the policy less that action. A run that still succeeds names an action the policy does not need:
the script prints it and exits 1. Actions only in rows whose proof says why the sandbox cannot
show them (a registry, KMS, tag-on-create checks moto does not make) are listed, not run.
Only the bake role needs the shared sandbox (its sshd serves the builders' keys): run that one
under the sandbox lock.

``--discover`` runs every use as a user allowed everything and prints the actions each called
(the moto server's log): how the table was first filled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bake.iam.grants import GRANTS
from bake_sandbox import Sandbox
from bake_sandbox.iam_moto import ADMIN_POLICY, iam_moto_server
from tests.iam import iam_flows, story

ROLES = ["plan", "bake", "deploy", "lifecycle"]


def proven_actions(role: str, policy: str) -> tuple[list[str], list[str]]:
    """(actions a proven row gives ``role``, actions only unproven rows give it)."""
    proven = {a for g in GRANTS if role in g.roles and not g.proof.startswith(("unproven", "not in"))
              for a in g.actions}
    acts = story.policy_actions(policy)
    return [a for a in acts if a in proven], [a for a in acts if a not in proven]


def minimality(work: Path, roles: list[str], only: list[str] | None = None) -> int:
    """``only``: just these actions (the rows a change added), each where a role holds it."""
    sb = Sandbox()
    unneeded = []
    for role in roles:
        with story.fresh(work / role / "full", sb, role) as p:
            policy = p.iam_policy(role)
            full = story.run_role(p, role, policy, f"{role}-full")
            if not all(o.ok for o in full):
                print(f"{role}: FAILS WITH THE FULL POLICY:\n{full[-1].why}")
                return 1
        proven, unproven = proven_actions(role, policy)
        if only:
            proven = [a for a in proven if a in only]
        print(f"## {role}: {len(proven)} action(s) to remove in turn; not shown by the sandbox: {', '.join(unproven) or 'none'}")
        # The plan role's uses change nothing its next run depends on: one prepared account
        # serves every run (its preparation deploys the stack, which takes a while).
        shared = story.fresh(work / role / "shared", sb, role) if role == "plan" else None
        p_shared = shared.__enter__() if shared else None
        for i, action in enumerate(proven):
            t0 = time.monotonic()
            if p_shared is not None:
                outcomes = story.run_role(p_shared, role, story.without(policy, action=action), f"{role}-less-{i}")
            else:
                with story.fresh(work / role / f"{i}", sb, role) as p:
                    outcomes = story.run_role(p, role, story.without(policy, action=action), f"{role}-less-{i}")
            failed = next((o for o in outcomes if not o.ok), None)
            if failed is None:
                unneeded.append((role, action))
                print(f"   {action}: NOT NEEDED (every use succeeded without it)")
            else:
                first = next((line for line in failed.why.splitlines() if "AccessDenied" in line), failed.why.splitlines()[0] if failed.why else "")
                print(f"   {action}: needed by {failed.use} ({time.monotonic() - t0:.0f}s): {first.strip()[:220]}")
        if shared:
            shared.__exit__(None, None, None)
    if unneeded:
        print(f"not needed: {unneeded}")
    return 1 if unneeded else 0


def discover(work: Path, bake: bool) -> int:
    sb = Sandbox()
    with iam_moto_server(work / "moto", sb.layout if bake else None) as moto:
        p = iam_flows.new_project(work / "project", moto, sb)
        iam_flows.make_legacy_group(moto, story.ADOPTED_GROUP)
        steps = {
            "adopt": lambda c: iam_flows.adopt(p, c, story.ADOPTED_GROUP),
            "bake": lambda c: iam_flows.bake(p, c),
            "deploy": lambda c: iam_flows.deploy(p, c, rollout=lambda: iam_flows.recorded_amis(p, story.POOLS)),
            "plan": lambda c: iam_flows.plan(p, c),
            "lifecycle": lambda c: iam_flows.lifecycle(p, c),
        }
        for use, run in steps.items():
            if use == "bake" and not bake:
                iam_flows.recorded_amis(p, story.POOLS)
                continue
            if use == "lifecycle":
                iam_flows.lifecycle_leftovers(moto, "cpu")
            creds = moto.create_user(f"discover-{use}", ADMIN_POLICY)
            failed = iam_flows.first_failure(run(creds))
            called = list(dict.fromkeys(a for a, _ in moto.actions(creds)))
            print(f"## {use} ({'FAILED' if failed else 'ok'}): {len(called)} action(s)")
            for a in called:
                print(f"   {a}")
            if failed:
                print(str(failed))
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--discover", action="store_true")
    ap.add_argument("--no-bake", action="store_true",
                    help="with --discover: lock entries stand in for the bake (no shared sandbox needed)")
    ap.add_argument("--role", action="append", choices=ROLES)
    ap.add_argument("--action", action="append", metavar="SERVICE:ACTION",
                    help="only remove this action (repeatable; default: every proven action)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bake-iam-") as tmp:
        if args.discover:
            return discover(Path(tmp), not args.no_bake)
        return minimality(Path(tmp), args.role or ROLES, args.action)


if __name__ == "__main__":
    sys.exit(main())
