"""The least-privilege proof's shape, shared by tests/iam/test_least_privilege.py and
tests/iam/minimality.py: for each role, how to bring a fresh IAM-enforcing moto to the point
where the role's uses can run (as the administrator), the uses themselves (as the role's user),
and what success means for each.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bake_sandbox.iam_moto import Credentials, IamMoto, iam_moto_server
from tests.iam import iam_flows
from tests.iam.iam_flows import IamProject, Step, first_failure

ADOPTED_GROUP = "legacy-nodes"
POOLS = ["cpu", "legacy", "adopted"]


@dataclass
class Outcome:
    use: str
    ok: bool
    why: str
    steps: list[Step]


def _adopt_as_admin(p: IamProject) -> None:
    iam_flows.make_legacy_group(p.moto, ADOPTED_GROUP)
    step = iam_flows.adopt(p, p.moto.admin, ADOPTED_GROUP)[0]
    assert step.ok, str(step)


def _deploy_as_admin(p: IamProject) -> None:
    iam_flows.recorded_amis(p, POOLS)
    failed = first_failure(iam_flows.deploy(p, p.moto.admin))
    assert failed is None, str(failed)


def prepare(role: str, p: IamProject) -> None:
    """As the administrator: what must exist before ``role``'s uses run."""
    if role == "lifecycle":
        iam_flows.recorded_amis(p, ["cpu", "legacy"])
        iam_flows.lifecycle_leftovers(p.moto, "cpu")
        # prune reads every launch template's versions to know which AMIs are in use.
        p.moto.client("ec2").create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={"ImageId": "ami-ekslinux"})
        return
    _adopt_as_admin(p)
    if role == "plan":
        _deploy_as_admin(p)
    elif role == "deploy":
        iam_flows.recorded_amis(p, POOLS)


def _all_ok(use: str, steps: list[Step]) -> Outcome:
    failed = first_failure(steps)
    return Outcome(use, failed is None, str(failed) if failed else "", steps)


def _adopt_again(p: IamProject, creds: Credentials) -> Outcome:
    """``bake adopt`` of another group into a scratch copy of the config (adopt writes it)."""
    group = iam_flows.make_legacy_group(p.moto, f"{ADOPTED_GROUP}-{creds.user}")
    scratch = p.dir / f"adopt-{creds.user}.toml"
    shutil.copy(p.config, scratch)
    step = p.bake(creds, "adopt", group, "--pool", "adopted2", "--config", str(scratch),
                  "--image", iam_flows.sandbox_image(p))
    return _all_ok("adopt", [step])


def _bake_refused_at_snapshot_tags(p: IamProject, creds: Credentials) -> Outcome:
    """The bake with its snapshot tagging refused (the last AWS call before the lock is written):
    it must fail with the refusal named and undo everything it made, its AMI and snapshots
    included."""
    snapshots_before = _snapshots(p)
    step = p.bake(creds, "build", "--config", str(p.config), "--pool", "legacy", "--json")
    left = {k: v for k, v in iam_flows.leftovers(p.moto).items() if v and k != "images"}
    amis = [a for a in iam_flows.leftovers(p.moto)["images"] if a not in _lock_amis(p)]
    # The refused tagging left the AMI's snapshots untagged: look for them by what is new.
    snapshots = sorted(_snapshots(p) - snapshots_before)
    want = "AccessDenied: ec2:CreateTags is not allowed for arn:aws:iam::123456789012:user/"
    ok = step.returncode == 1 and want in step.stdout and not left and not amis and not snapshots
    return Outcome("bake-undo", ok, "" if ok else f"left {left} {amis} {snapshots}\n{step}", [step])


def _bake_refused_at_sharing(p: IamProject, creds: Credentials) -> Outcome:
    """Pool cpu's bake with its sharing refused (the distribution's last step, after the copy in
    the second region was made and tagged): it must fail naming the refusal and undo the copy as
    well as the AMI, so that nothing of it is left in either region and the lock does not name it."""
    step = p.bake(creds, "build", "--config", str(p.config), "--pool", "cpu", "--json")
    left = iam_flows.leftovers(p.moto)
    amis = [a for a in left["images"] if a not in _lock_amis(p)]
    others = {k: v for k, v in left.items() if v and k != "images"}
    want = "AccessDenied: ec2:ModifyImageAttribute is not allowed for arn:aws:iam::123456789012:user/"
    copied = ("ec2:CopyImage", True) in p.moto.actions(creds)
    ok = step.returncode == 1 and want in step.stdout and copied and not amis and not others
    return Outcome("share-undo", ok, "" if ok else f"copied: {copied}, left {others} {amis}\n{step}", [step])


def _snapshots(p: IamProject) -> set[str]:
    return {s["SnapshotId"] for s in p.moto.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def _lock_amis(p: IamProject) -> set[str]:
    if not p.lock.exists():
        return set()
    data = json.loads(p.lock.read_text())
    entries = [e for pool in data["pools"].values() for e in [pool.get("current") or {}, *pool.get("history", [])] if e]
    return {ami for e in entries for ami in [e["ami_id"], *(e.get("copies") or {}).values()]}


Use = Callable[[str, str], Outcome]  # (policy, user name) -> what happened


def _as(p: IamProject, run: Callable[[Credentials], Outcome]) -> Use:
    return lambda policy, user: run(p.moto.create_user(user, policy))


def uses(role: str, p: IamProject) -> list[tuple[str, Use]]:
    """The uses a role's users run, in order; each makes its user from the policy it is given."""
    if role == "plan":
        return [("adopt", _as(p, lambda c: _adopt_again(p, c))),
                ("plan", _as(p, lambda c: _all_ok("plan", iam_flows.plan(p, c))))]
    if role == "bake":
        # The undo first: it bakes pool legacy before the whole bake records it. It goes without
        # ec2:CreateTags altogether: moto checks actions only (another statement allows it for
        # tags on create), and in moto the creating calls' tag specifications need no CreateTags.
        # Then the distribution's undo: pool cpu refused its sharing, after its copy was made.
        return [("bake-undo", lambda policy, user: _bake_refused_at_snapshot_tags(
                    p, p.moto.create_user(user, without(policy, action="ec2:CreateTags")))),
                ("share-undo", lambda policy, user: _bake_refused_at_sharing(
                    p, p.moto.create_user(user, without(policy, action="ec2:ModifyImageAttribute")))),
                ("bake", _as(p, lambda c: _all_ok("bake", iam_flows.bake(p, c))))]
    if role == "deploy":
        return [("deploy", _as(p, lambda c: _all_ok("deploy", iam_flows.deploy(
            p, c, rollout=lambda: iam_flows.recorded_amis(p, POOLS)))))]
    if role == "lifecycle":
        return [("lifecycle", _as(p, lambda c: _lifecycle(p, c)))]
    raise ValueError(role)


def _lifecycle(p: IamProject, creds: Credentials) -> Outcome:
    out = _all_ok("lifecycle", iam_flows.lifecycle(p, creds))
    left = iam_flows.leftovers(p.moto)
    stray = {k: v for k, v in left.items() if k != "images" and v} or \
        {"images": [a for a in left["images"] if a not in _lock_amis(p)]}
    if out.ok and any(stray.values()):
        return Outcome("lifecycle", False, f"exited 0 but left {stray}", out.steps)
    return out


def policy_actions(policy: str) -> list[str]:
    out: list[str] = []
    for st in json.loads(policy)["Statement"]:
        out += [a for a in st["Action"] if a not in out]
    return out


def without(policy: str, *, action: str | None = None, sid: str | None = None) -> str:
    """``policy`` less one action (everywhere) or one statement."""
    doc = json.loads(policy)
    kept = []
    for st in doc["Statement"]:
        if sid and st.get("Sid") == sid:
            continue
        acts = [a for a in st["Action"] if a != action]
        if acts:
            kept.append({**st, "Action": acts})
    return json.dumps({**doc, "Statement": kept})


@contextmanager
def fresh(work: Path, sandbox, role: str) -> Iterator[IamProject]:  # noqa: ANN001
    """A new IAM-enforcing moto and project, prepared for ``role`` (the bake's needs the
    sandbox's sshd to serve its builders' keys)."""
    with iam_moto_server(work / "moto", sandbox.layout if role == "bake" else None) as moto:
        p = iam_flows.new_project(work / "project", moto, sandbox)
        prepare(role, p)
        yield p


def run_role(p: IamProject, role: str, policy: str, user: str) -> list[Outcome]:
    """Every use of ``role``, each as a new user holding ``policy``; stops at the first that fails."""
    out = []
    for i, (_, use) in enumerate(uses(role, p)):
        out.append(use(policy, f"{user}-{i}"))
        if not out[-1].ok:
            break
    return out


def role_policy(p: IamProject, role: str) -> str:
    return p.iam_policy(role)


def project_json(p: IamProject) -> dict:
    return {"dir": str(p.dir), "endpoint": p.moto.endpoint}


__all__ = ["fresh", "run_role", "uses", "without", "policy_actions", "Outcome", "IamMoto"]
