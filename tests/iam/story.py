"""The least-privilege story, shared by tests/iam/test_least_privilege.py and
tests/iam/minimality.py: one IAM-enforcing moto, one project, one user per role.

``Story.prepare`` brings the project to the point where each role's use can run: a live group
to adopt, baked AMIs, a deployed stack, a killed bake's leftovers and an older AMI to prune.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.iam import iam_flows
from tests.iam.iam_flows import IamProject, Step
from bake.sandbox.iam_moto import Credentials, IamMoto

ADOPTED_GROUP = "legacy-nodes"


@dataclass
class Story:
    project: IamProject
    users: dict[str, Credentials] = field(default_factory=dict)

    @property
    def moto(self) -> IamMoto:
        return self.project.moto

    def user(self, role: str, policy: str | None = None, suffix: str = "") -> Credentials:
        """An IAM user holding exactly ``policy`` (default: what ``iam-policy --role ROLE`` prints)."""
        name = f"bake-{role}{suffix}"
        creds = self.moto.create_user(name, policy if policy is not None else self.project.iam_policy(role))
        self.users[name] = creds
        return creds

    def uses(self) -> dict[str, Callable[[Credentials], list[Step]]]:
        p = self.project
        return {
            "adopt": lambda c: iam_flows.adopt(p, c, ADOPTED_GROUP),
            "bake": lambda c: iam_flows.bake(p, c),
            "deploy": lambda c: iam_flows.deploy(p, c),
            "plan": lambda c: iam_flows.plan(p, c),
            "lifecycle": lambda c: iam_flows.lifecycle(p, c),
        }


# Which role runs each use.
ROLE_OF_USE = {"adopt": "plan", "bake": "bake", "deploy": "deploy", "plan": "plan", "lifecycle": "lifecycle"}


def policy_actions(policy: str) -> list[str]:
    doc = json.loads(policy)
    out: list[str] = []
    for st in doc["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        out += [a for a in acts if a not in out]
    return out


def without_action(policy: str, action: str) -> str:
    doc = json.loads(policy)
    kept = []
    for st in doc["Statement"]:
        acts = [a for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]) if a != action]
        if acts:
            kept.append({**st, "Action": acts})
    return json.dumps({**doc, "Statement": kept})


def prepare_lifecycle(moto: IamMoto) -> dict[str, str]:
    """A killed bake's leftovers, older than sweep's 1h: made by the administrator."""
    from datetime import datetime, timedelta, timezone

    created = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return iam_flows.killed_bake(moto, "cpu", created)


def new_story(dir: Path, moto: IamMoto, sandbox) -> Story:  # noqa: ANN001
    return Story(iam_flows.new_project(dir, moto, sandbox))
