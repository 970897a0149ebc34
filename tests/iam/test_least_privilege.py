"""Least privilege, proven against moto enforcing IAM (bake.sandbox.iam_moto): for each role, a
user holding exactly what ``python -m bake iam-policy --role ROLE`` prints runs the role's uses
and succeeds; with too little, the first refused call is named, with the command that prints the
policy, and nothing is left. Which uses: tests/iam/story.py.

moto checks the Action element only (docs/iam.md: Resource and Condition are not evaluated
here). Only the bake needs the shared sandbox (its sshd serves the builders' keys, its registries
the images): those tests are marked ``sandbox`` and run under the sandbox lock; the others start
nothing shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bake import tags
from bake.sandbox import Sandbox
from tests.iam import iam_flows, story

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def builder_sandbox(sandbox):  # noqa: ANN001, ANN201
    """The shared sandbox, whose sshd must also serve a private moto's builders."""
    from bake.sandbox import builder

    # A sandbox started by an older checkout has another keys command: sshd is restarted with
    # this one (which does all the old one did).
    builder.serve_extra_endpoints(sandbox.layout)
    return sandbox


def run_with_printed_policy(tmp_path: Path, sb: Sandbox, role: str) -> None:
    with story.fresh(tmp_path, sb, role) as p:
        check_role_ran(p, role, story.run_role(p, role, p.iam_policy(role), role))


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
def test_plan_role_runs_adopt_plan_synthesis_terraform_plan_and_review(tmp_path: Path) -> None:
    run_with_printed_policy(tmp_path, Sandbox(), "plan")


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
