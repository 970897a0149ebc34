"""Least privilege, proven against moto enforcing IAM (bake_sandbox.iam_moto): for each role, a
user holding exactly what ``python -m bake iam-policy --role ROLE`` prints runs the role's uses
and succeeds; with too little, the first refused call is named, with the command that prints the
policy, and nothing is left. Which uses: tests/iam/story.py.

moto checks the Action element only. The Resource and Condition elements are proven by
evaluation: every call each use made is recorded with its parameters, turned into the checks AWS
makes for it (tests/iam/authz.py: resource ARNs and condition keys, from the Service
Authorization Reference) and evaluated against the same policy (tests/support/iam_eval.py): all
must be allowed, and the controls (a destructive call on an untagged resource, a copy's tags
outside CopyImage, another KMS key or region) denied.

The bake and the plan need the shared sandbox (its sshd serves the builders' keys, its
registries the images a bake pulls and ``bake plan`` resolves): those tests are marked
``sandbox`` and run under the sandbox lock; the others start nothing shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bake import tags
from bake_sandbox import Sandbox
from support import iam_eval as evaluation
from tests.iam import authz, iam_flows, story

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def builder_sandbox(sandbox):  # noqa: ANN001, ANN201
    """The shared sandbox, whose sshd must also serve a private moto's builders."""
    from bake_sandbox import builder

    # A sandbox started by an older checkout has another keys command: sshd is restarted with
    # this one (which does all the old one did).
    builder.serve_extra_endpoints(sandbox.layout)
    return sandbox


def run_with_printed_policy(tmp_path: Path, sb: Sandbox, role: str) -> None:
    with story.fresh(tmp_path, sb, role) as p:
        policy = p.iam_policy(role)
        check_role_ran(p, role, story.run_role(p, role, policy, role))
        found = check_every_call_allowed(p, role, policy)
        check_rows_needed(policy, found, EVALUATION_ONLY.get(role, ()))
        check_region_control(json.loads(policy), found)
        if role == "lifecycle":
            check_tag_control(json.loads(policy), found)


def users_and_policies(p: iam_flows.IamProject, role: str, policy: str) -> list[tuple[str, str]]:
    """Each use's user (run_role names them ROLE-N) and the policy it ran with: the printed one,
    less the action an undo use has taken away (UNDO_REFUSALS)."""
    removed = dict(UNDO_REFUSALS) if role == "bake" else {}
    users = [f"{role}-{i}" for i in range(len(story.uses(role, p)))]
    return [(u, story.without(policy, action=removed[u]) if u in removed else policy) for u in users]


def check_every_call_allowed(p: iam_flows.IamProject, role: str, policy: str) -> list[authz.Verdict]:
    """Every call of every use of ``role``, evaluated with its resources and conditions against
    the policy its user held: each allowed but the one an undo use was refused on purpose."""
    out, calls = [], 0
    for user, held in users_and_policies(p, role, policy):
        recorded = authz.recorded(p.moto.action_log, user)
        found = authz.verdicts(json.loads(held), recorded)
        assert found, f"{user}: no call recorded"
        denied = [str(v) for v in found if not v.decision.allowed and not _refused_on_purpose(user, v)]
        assert not denied, "\n".join(denied)
        out, calls = out + found, calls + len(recorded)
    problems = authz.sar_problems([v.check for v in out])
    assert not problems, "\n".join(problems)
    print(f"scoping: {role}: {calls} calls recorded, {len(out)} checks, {sum(v.decision.allowed for v in out)} allowed")
    return out


def _refused_on_purpose(user: str, v: authz.Verdict) -> bool:
    """The action an undo use's policy lacks, and for the use refused at its snapshot tagging
    the deletion of the snapshots that refusal left untagged: moto lets its undo delete them; AWS
    would refuse (the tag condition), and they would stay (docs/iam.md)."""
    action = v.check.request.action
    if (user, action) in UNDO_REFUSALS:
        return True
    untagged = f"aws:ResourceTag/{tags.KEY_TOOL}" not in v.check.request.context
    return (user, "ec2:CreateTags") in UNDO_REFUSALS and action == "ec2:DeleteSnapshot" and untagged


# Statements moto cannot show needed (it checks the action only, and another statement holds the
# same action): the evaluation shows each is, by a check only it allows.
EVALUATION_ONLY = {"bake": ("TagCopies",), "deploy": ("TagTemplatesOnCreate", "GroupsLaunchTags")}


def check_rows_needed(policy: str, found: list[authz.Verdict], sids: tuple[str, ...]) -> None:
    for sid in sids:
        less = json.loads(story.without(policy, sid=sid))
        assert len(less["Statement"]) < len(json.loads(policy)["Statement"]), f"no statement {sid}"
        lost = [v for v in found if v.decision.allowed and not evaluation.evaluate(less, v.check.request).allowed]
        assert lost, f"every call is still allowed without statement {sid}"


DESTRUCTIVE = {"ec2:TerminateInstances", "ec2:DeregisterImage", "ec2:DeleteSnapshot", "ec2:DeleteKeyPair",
               "ec2:DeleteSecurityGroup"}


def denied(policy: dict, request: evaluation.Request, why: str) -> None:
    d = evaluation.evaluate(policy, request)
    assert not d.allowed, f"{why}: {request} is {d.reason}"


def check_tag_control(policy: dict, found: list[authz.Verdict]) -> int:
    """Each destructive call the uses made, on the same resource without the tool's tag (or with
    another value), is denied by the same policy."""
    seen = [v for v in found if v.decision.allowed and v.check.request.action in DESTRUCTIVE]
    assert {v.check.request.action for v in seen} == DESTRUCTIVE, seen
    for v in seen:
        request = v.check.request
        assert request.context.get(f"aws:ResourceTag/{tags.KEY_TOOL}") == tags.TOOL, str(v)
        untagged = authz.without_keys(request, "aws:ResourceTag/", "ec2:ResourceTag/")
        denied(policy, untagged, "a destructive call on a resource without the tool's tag")
        other = {k: ("someone-else" if k.endswith(f"Tag/{tags.KEY_TOOL}") else val) for k, val in request.context.items()}
        denied(policy, evaluation.Request(request.action, request.resource, other), "another tool's resource")
    print(f"scoping: controls: {len(seen)} destructive calls, each denied untagged and with another tool's tag")
    return len(seen)


def check_region_control(policy: dict, found: list[authz.Verdict], region: str = "eu-west-1") -> int:
    """Every allowed check on a resource ARN, moved to a region the config does not name, is denied.
    (The actions AWS authorizes on "*" only, Describe* and the like, stay allowed: the policy
    does not condition them on aws:RequestedRegion.)"""
    scoped = [v for v in found if v.decision.allowed and v.check.request.resource != "*"]
    assert scoped
    for v in scoped:
        denied(policy, authz.elsewhere(v.check.request, region), f"a region not in the config ({region})")
    print(f"scoping: controls: {len(scoped)} resource-scoped checks, each denied in {region}; "
          f"{sum(v.decision.allowed and v.check.request.resource == '*' for v in found)} on '*' not region-scoped")
    return len(scoped)




def check_role_ran(p: iam_flows.IamProject, role: str, outcomes: list[story.Outcome]) -> None:
    for o in outcomes:
        assert o.ok, o.why
    assert [o.use for o in outcomes] == [u for u, _ in story.uses(role, p)]
    # Every call the role's users made was allowed but those the undo tests refuse.
    refused = [(u.split("/")[-1], a) for u, a, ok in _decisions(p) if not ok and u.split("/")[-1].startswith(role)]
    assert refused == (UNDO_REFUSALS if role == "bake" else []), refused


# The bake role's undo uses (tests/iam/story.py): the one call each is refused.
UNDO_REFUSALS = [("bake-0", "ec2:CreateTags"), ("bake-1", "ec2:ModifyImageAttribute")]


def _decisions(p: iam_flows.IamProject) -> list[tuple[str, str, bool]]:
    return [(d["caller"], d["action"], d["allowed"]) for d in map(json.loads, p.moto.action_log.read_text().splitlines())]


@pytest.mark.terraform
@pytest.mark.sandbox
def test_plan_role_runs_adopt_plan_synthesis_terraform_plan_and_review(tmp_path: Path, sandbox) -> None:  # noqa: ANN001
    # bake plan resolves the sample images in the sandbox's registries: they must be up.
    run_with_printed_policy(tmp_path, sandbox, "plan")


@pytest.mark.terraform
def test_deploy_role_applies_template_configuration_and_the_import_then_a_rollout(tmp_path: Path) -> None:
    run_with_printed_policy(tmp_path, Sandbox(), "deploy")


def test_lifecycle_role_prunes_and_sweeps(tmp_path: Path) -> None:
    run_with_printed_policy(tmp_path, Sandbox(), "lifecycle")


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory,
          builder_sandbox) -> Iterator[tuple[iam_flows.IamProject, list[story.Outcome]]]:  # noqa: ANN001
    """The bake role's uses, run once for the module: the refused bake's undo, then a whole bake
    of every pool (pool cpu copied, encrypted, shared; tests/iam/iam_flows.py DISTRIBUTE)."""
    with story.fresh(tmp_path_factory.mktemp("bake"), builder_sandbox, "bake") as p:
        yield p, story.run_role(p, "bake", p.iam_policy("bake"), "bake")


@pytest.mark.sandbox
def test_bake_role_bakes_every_pool_and_undoes_a_refused_bake(baked) -> None:  # noqa: ANN001
    p, outcomes = baked
    check_role_ran(p, "bake", outcomes)


@pytest.mark.sandbox
def test_bake_role_copies_shares_and_tags_the_distributed_ami(baked) -> None:  # noqa: ANN001
    """What the distribution rows allow really happened, as the bake role's user: the copy in
    the second region carries the tool's tags, and the AMI, the copy and the AMI's snapshots are
    shared with the account."""
    p, outcomes = baked
    assert all(o.ok for o in outcomes), outcomes[-1].why
    entry = json.loads(p.lock.read_text())["pools"]["cpu"]["current"]
    copy = entry["copies"][iam_flows.COPY_REGION]
    here, there = p.moto.client("ec2"), p.moto.client("ec2", region=iam_flows.COPY_REGION)
    (image,) = there.describe_images(ImageIds=[copy])["Images"]
    copy_tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    assert copy_tags[tags.KEY_TOOL] == tags.TOOL and copy_tags[tags.KEY_SOURCE_AMI] == entry["ami_id"], copy_tags
    # Tagged by CopyImage itself, snapshot included: the policy lets CreateTags tag a copy only so.
    snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    (snapshot,) = there.describe_snapshots(SnapshotIds=[snap])["Snapshots"]
    assert {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])} == copy_tags
    tag_copies = [st for st in json.loads(p.iam_policy("bake"))["Statement"]
                  if "ec2:CreateTags" in st["Action"] and iam_flows.COPY_REGION in json.dumps(st["Resource"])]
    assert [st["Condition"]["StringEquals"]["ec2:CreateAction"] for st in tag_copies] == ["CopyImage"], tag_copies
    for ec2, ami in ((here, entry["ami_id"]), (there, copy)):
        perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
        assert {"UserId": iam_flows.SHARED_WITH} in perms, (ami, perms)
    for snap in entry["snapshot_ids"]:
        perms = here.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
        assert {"UserId": iam_flows.SHARED_WITH} in perms["CreateVolumePermissions"], (snap, perms)
    whole_bake = f"bake-{[u for u, _ in story.uses('bake', p)].index('bake')}"  # run_role's user names
    allowed = {a for a, ok in p.moto.actions(whole_bake) if ok}
    assert {"ec2:CopyImage", "ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute", "ec2:DescribeRegions"} <= allowed


@pytest.mark.sandbox
def test_bake_role_every_call_is_allowed_with_its_resources_and_conditions(baked) -> None:  # noqa: ANN001
    """The calls of the three bake uses (each builder, group, key pair, AMI, snapshot, the copy and
    its KMS key, the sharing), each evaluated on its resources and conditions against the printed
    policy: all allowed, but the one call each undo use was refused on purpose."""
    p, outcomes = baked
    assert all(o.ok for o in outcomes), outcomes[-1].why
    found = check_every_call_allowed(p, "bake", p.iam_policy("bake"))
    actions = {v.check.request.action for v in found}
    assert {"ec2:RunInstances", "ec2:CreateImage", "ec2:CopyImage", "ec2:CreateTags", "kms:CreateGrant"} <= actions, actions
    assert DESTRUCTIVE <= actions, actions


@pytest.mark.sandbox
def test_bake_policy_denies_what_the_config_does_not_name(baked) -> None:  # noqa: ANN001
    """The bake's own calls, changed one way each, are denied by the same policy: a destructive
    call on a resource without the tool's tag; tags on the copy outside CopyImage; the copy's KMS
    calls on another key or in another region; any resource in a region the config does not name."""
    p, _ = baked
    policy = json.loads(p.iam_policy("bake"))
    found = [v for user, _ in users_and_policies(p, "bake", p.iam_policy("bake"))
             for v in authz.verdicts(policy, authz.recorded(p.moto.action_log, user))]
    check_rows_needed(p.iam_policy("bake"), found, EVALUATION_ONLY["bake"])
    check_tag_control(policy, found)
    copy_tags = [v.check.request for v in found if v.decision.allowed and v.check.request.action == "ec2:CreateTags"
                 and v.check.request.context.get("ec2:CreateAction") == "CopyImage"]
    assert {r.resource.split(":")[5].split("/")[0] for r in copy_tags} == {"image", "snapshot"}, copy_tags
    for r in copy_tags:
        assert r.resource.split(":")[3] == iam_flows.COPY_REGION, r
        denied(policy, authz.without_keys(r, "ec2:CreateAction"), "tags on a copy outside a creating call")
        denied(policy, evaluation.Request(r.action, r.resource, {**r.context, "ec2:CreateAction": "CreateImage"}),
               "tags on a copy by another creating call")
        denied(policy, authz.without_keys(r, f"aws:RequestTag/{tags.KEY_TOOL}"), "a copy tagged without the tool's tag")
    kms = [v.check.request for v in found if v.decision.allowed and v.check.request.action.startswith("kms:")]
    assert {r.action for r in kms} == {f"kms:{a.split(':')[1]}" for a in authz.EBS_KMS_ACTIONS}, kms
    assert {r.resource for r in kms} == {iam_flows.COPY_KEY}, kms
    other_key = iam_flows.COPY_KEY.rsplit("/", 1)[0] + "/0000aaaa-00aa-00aa-00aa-000000aaaaaa"
    for r in kms:
        denied(policy, evaluation.Request(r.action, other_key, r.context), "a KMS key not in the config")
        denied(policy, authz.elsewhere(r, "us-east-1"), "the copy region's key id in another region")
    check_region_control(policy, found)
    print(f"scoping: controls: {len(copy_tags)} copy tag checks, {len(kms)} KMS checks, each denied when changed")


@pytest.mark.sandbox
def test_build_as_plan_fails_at_its_first_write_naming_the_policy_and_leaves_nothing(
        tmp_path: Path, builder_sandbox) -> None:  # noqa: ANN001
    with story.fresh(tmp_path, builder_sandbox, "bake") as p:
        creds = p.moto.create_user("planner", p.iam_policy("plan"))
        step = p.bake(creds, "build", "--config", str(p.config))
        assert step.returncode == 1, str(step)
        expected = ("AWS: AccessDenied: ec2:ImportKeyPair is not allowed for arn:aws:iam::123456789012:user/planner; "
                    "python -m bake iam-policy --role bake prints the policy this needs")
        assert expected in step.stderr, str(step)
        calls = p.moto.actions(creds)
        refused = [a for a, ok in calls if not ok]
        # The reads all passed; the first write was refused, for every pool, and nothing else was tried.
        assert set(refused) == {"ec2:ImportKeyPair"}, calls
        assert calls.index(("ec2:ImportKeyPair", False)) > calls.index(("ec2:DescribeImages", True))
        assert iam_flows.leftovers(p.moto) == {"instances": [], "security_groups": [], "key_pairs": [], "images": []}
        assert not p.lock.exists()


def test_lifecycle_policy_holds_no_action_it_does_not_need(tmp_path: Path) -> None:
    """The minimality check (tests/iam/minimality.py) for one role, in the suite: each action of
    the lifecycle policy removed in turn makes prune or sweep fail. The other roles: a one-off
    run of that script (docs/iam.md)."""
    from tests.iam.minimality import proven_actions

    sb = Sandbox()
    with story.fresh(tmp_path / "full", sb, "lifecycle") as p:
        policy = p.iam_policy("lifecycle")
    actions, unproven = proven_actions("lifecycle", policy)
    assert actions and not unproven
    for i, action in enumerate(actions):
        with story.fresh(tmp_path / str(i), sb, "lifecycle") as p:
            outcomes = story.run_role(p, "lifecycle", story.without(policy, action=action), f"less-{i}")
            # What moto refused the users of this run (less-I-USE): the removed action, and only it.
            refused = {a.lower() for u, a, ok in _decisions(p) if not ok and u.split("/")[-1].startswith(f"less-{i}-")}
        assert not all(o.ok for o in outcomes), f"prune and sweep succeed without {action}"
        assert refused == {action.lower()}, f"without {action}, moto refused {sorted(refused)}"
