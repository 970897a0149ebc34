"""Render the table in ``bake.iam.grants`` as one role's IAM policy document for one config."""

from __future__ import annotations

import json
from typing import Any

from bake.errors import UsageError
from bake.iam.grants import GRANTS, ROLES, Grant
from bake.iam.scope import Scope


def grants_for(role: str, scope: Scope) -> list[Grant]:
    if role not in ROLES:
        raise UsageError(f"no role {role!r}; roles: {', '.join(ROLES)}")
    return [g for g in GRANTS if role in g.roles and g.when(scope)]


def policy(role: str, scope: Scope) -> dict[str, Any]:
    """The policy document: one statement per (resources, condition), its actions merged and
    sorted, so equal scopes from different code paths make one statement."""
    statements: dict[str, dict[str, Any]] = {}
    for g in grants_for(role, scope):
        resources = sorted(dict.fromkeys(g.resources(scope)))
        if not resources:
            continue
        key = json.dumps([resources, g.condition], sort_keys=True)
        st = statements.get(key)
        if st is None:
            st = statements[key] = {"Sid": _unique_sid(g.sid, statements), "Effect": "Allow", "Action": [],
                                    "Resource": resources if len(resources) > 1 else resources[0]}
            if g.condition:
                st["Condition"] = g.condition
        st["Action"] = sorted(set(st["Action"]) | set(g.actions))
    return {"Version": "2012-10-17", "Statement": list(statements.values())}


def _unique_sid(sid: str, statements: dict[str, dict[str, Any]]) -> str:
    taken = {st["Sid"] for st in statements.values()}
    n, out = 2, sid
    while out in taken:
        out, n = f"{sid}{n}", n + 1
    return out


def render(role: str, scope: Scope) -> str:
    return json.dumps(policy(role, scope), indent=2) + "\n"
