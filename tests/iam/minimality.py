"""Every action in each printed policy is needed: remove it, run the use, see it fail.

    flock /tmp/bake-sandbox.lock env CI=true .venv/bin/python -m tests.iam.minimality [--role ROLE]...
    flock /tmp/bake-sandbox.lock env CI=true .venv/bin/python -m tests.iam.minimality --discover

For each role, the story is prepared once with users holding the full policies; then, for each
action of the role's policy, a new user holds the policy minus that action and runs the role's
use again on a fresh copy of the state it needs (a use that succeeded already changed the
account: the bake's rerun bakes a changed image, the deploy's rerun applies a new lock). A run
that still succeeds names an action the policy does not need, and the script exits 1.
``--discover`` instead runs every use as a user allowed everything and prints the actions each
called (the moto server's log): how the table in bake/iam/grants.py was first filled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bake.sandbox import Sandbox
from bake.sandbox.iam_moto import ADMIN_POLICY, iam_moto_server
from tests.iam import story as story_mod
from tests.iam.iam_flows import first_failure, make_legacy_group


def discover(work: Path) -> int:
    sb = Sandbox()
    with iam_moto_server(work / "moto", sb.layout) as moto:
        st = story_mod.new_story(work / "project", moto, sb)
        make_legacy_group(moto, story_mod.ADOPTED_GROUP)
        for use, run in st.uses().items():
            if use == "lifecycle":
                story_mod.prepare_lifecycle(moto)
            creds = st.user(f"discover-{use}", ADMIN_POLICY)
            steps = run(creds)
            failed = first_failure(steps)
            called = list(dict.fromkeys(a for a, ok in moto.actions(creds)))
            print(f"## {use} ({'FAILED' if failed else 'ok'}): {len(called)} action(s)")
            for a in called:
                print(f"   {a}")
            if failed:
                print(str(failed))
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--discover", action="store_true")
    ap.add_argument("--role", action="append", choices=["plan", "bake", "deploy", "lifecycle"])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bake-iam-") as tmp:
        if args.discover:
            return discover(Path(tmp))
        return minimality(Path(tmp), args.role or ["plan", "bake", "deploy", "lifecycle"])


def minimality(work: Path, roles: list[str]) -> int:
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main())
