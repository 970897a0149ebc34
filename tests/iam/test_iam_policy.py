"""``python -m bake iam-policy``: the printed policies, their scoping and conditions, the lint,
and the refusal message. No AWS here: tests/iam/test_least_privilege.py runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bake import tags
from bake.iam.grants import GRANTS, ROLES, TOOL_TAGGED, TOOL_TAGGING
from bake.iam.policy import policy
from bake.iam.refusal import describe, set_command
from bake.iam.scope import scope_of
from bake.model.config import load_config

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
region = "eu-west-1"

[provider]
allowed_account_ids = ["111122223333"]

[state]
backend = "s3"
bucket = "tf-state"
key = "nodepools.tfstate"
dynamodb_table = "tf-locks"

[pools.cpu]
base_ami = "ssm:/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
images = ["111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/env:rev3", "quay.io/org/env:rev9"]
subnet_id = "subnet-0abc"
iam_instance_profile = "builder-profile"
kms_key_id = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
security_group_ids = ["sg-0aaa"]
ecr_regional_aliases = true
[pools.cpu.distribute]
regions = ["eu-west-1", "eu-central-1"]
kms_key_ids = { "eu-central-1" = "alias/ami-copies" }
accounts = ["444455556666"]
ssm_parameter = "/team/cpu/ami"
[pools.cpu.fast_snapshot_restore]
availability_zones = ["eu-west-1a"]
[pools.cpu.launch_template]
iam_instance_profile = "eks-node"
[pools.cpu.asg]
subnet_ids = ["subnet-0abc"]

[pools.old]
base_ami = "asg:legacy-nodes"
images = ["quay.io/org/env:rev9"]
launch = "configuration"
[pools.old.asg]
subnet_ids = ["subnet-0abc"]

[pools.ng]
base_ami = "ami-0123456789abcdef0"
images = ["quay.io/org/env:rev9"]
launch = "nodegroup"
[pools.ng.nodegroup]
cluster_name = "prod"
node_role_arn = "arn:aws:iam::111122223333:role/eks-nodes"
subnet_ids = ["subnet-0abc"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bake.toml"
    path.write_text(CONFIG)
    return path


def printed(config: Path, role: str, *extra: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "bake", "iam-policy", "--role", role, "--config", str(config), *extra],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def statements_with(doc: dict, action: str) -> list[dict]:
    return [s for s in doc["Statement"] if action in s["Action"]]


def resources(st: dict) -> list[str]:
    return st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]


def all_actions(doc: dict) -> set[str]:
    return {a for s in doc["Statement"] for a in s["Action"]}


def test_scoped_to_what_the_config_names(config: Path) -> None:
    bake = printed(config, "bake")
    text = json.dumps(bake)
    assert "eu-west-1" in text and "us-east-1" not in text and "us-west-2" not in text
    assert ":111122223333:" in text and ":*:instance" not in text
    (ssm,) = statements_with(bake, "ssm:GetParameter")
    assert resources(ssm) == ["arn:aws:ssm:eu-west-1:*:parameter/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/"
                              "x86_64/standard/recommended/image_id"]
    (ecr,) = statements_with(bake, "ecr:BatchGetImage")
    assert resources(ecr) == ["arn:aws:ecr:eu-west-1:111122223333:repository/team/env"]  # not quay.io's
    launch = {r for s in statements_with(bake, "ec2:RunInstances") for r in resources(s)}
    assert "arn:aws:ec2:eu-west-1:111122223333:subnet/subnet-0abc" in launch
    assert "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0aaa" in launch
    assert not any(r.endswith(":subnet/*") for r in launch)
    kms = {tuple(resources(s)) for s in statements_with(bake, "kms:CreateGrant")}
    assert ("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",) in kms


def test_distribution_scoped_to_the_copy_regions_their_keys_and_the_parameter(config: Path) -> None:
    bake = printed(config, "bake")
    (copy,) = statements_with(bake, "ec2:CopyImage")
    # The source AMI in the bake's region; the new AMI and its snapshots in the copy's.
    assert resources(copy) == ["arn:aws:ec2:eu-central-1::image/*", "arn:aws:ec2:eu-central-1::snapshot/*",
                               "arn:aws:ec2:eu-west-1::image/*"]
    copy_keys = [s for s in statements_with(bake, "kms:ReEncryptTo") if "eu-central-1" in json.dumps(s)]
    assert [resources(s) for s in copy_keys] == [["arn:aws:kms:eu-central-1:111122223333:key/*"]]  # an alias: its region's keys
    # A copy is tagged only by its CopyImage (TagSpecifications), never by a later CreateTags.
    (tag_copies,) = [s for s in statements_with(bake, "ec2:CreateTags") if "eu-central-1" in json.dumps(s)]
    assert tag_copies["Condition"] == {"StringEquals": {"ec2:CreateAction": "CopyImage",
                                                        f"aws:RequestTag/{tags.KEY_TOOL}": tags.TOOL}}
    assert resources(tag_copies) == ["arn:aws:ec2:eu-central-1::image/*", "arn:aws:ec2:eu-central-1::snapshot/*"]
    for action, kind in (("ec2:ModifyImageAttribute", "image"), ("ec2:ModifySnapshotAttribute", "snapshot")):
        (share,) = statements_with(bake, action)
        assert share["Condition"] == TOOL_TAGGED
        assert resources(share) == [f"arn:aws:ec2:eu-central-1::{kind}/*", f"arn:aws:ec2:eu-west-1::{kind}/*"]
    for role in ("bake", "lifecycle"):
        (remove,) = statements_with(printed(config, role), "ec2:DeregisterImage")
        assert "arn:aws:ec2:eu-central-1::image/*" in resources(remove)
        assert not any("eu-central-1" in r for r in resources(remove) if ":instance/" in r)  # builders: bake region only
    deploy = printed(config, "deploy")
    params = ["arn:aws:ssm:eu-central-1:111122223333:parameter/team/cpu/ami",
              "arn:aws:ssm:eu-west-1:111122223333:parameter/team/cpu/ami"]
    for action in ("ssm:PutParameter", "ssm:AddTagsToResource", "ssm:GetParameter", "ssm:ListTagsForResource"):
        (st,) = statements_with(deploy, action)
        assert resources(st) == params, action
    (fsr,) = statements_with(deploy, "ec2:EnableFastSnapshotRestores")
    assert set(fsr["Action"]) >= {"ec2:DisableFastSnapshotRestores"} and fsr["Condition"] == TOOL_TAGGED
    assert resources(fsr) == ["arn:aws:ec2:eu-west-1::snapshot/*"]
    plan = printed(config, "plan")
    assert {"ec2:DescribeFastSnapshotRestores", "ssm:DescribeParameters", "ec2:DescribeRegions"} <= all_actions(plan)
    assert params[0] in {r for s in statements_with(plan, "ssm:GetParameter") for r in resources(s)}


def test_pass_role_only_for_the_configured_profiles_and_node_role(config: Path) -> None:
    for role, want in (("bake", {"arn:aws:iam::111122223333:role/builder-profile", "arn:aws:iam::111122223333:role/eks-node"}),
                       ("deploy", {"arn:aws:iam::111122223333:role/builder-profile", "arn:aws:iam::111122223333:role/eks-node",
                                   "arn:aws:iam::111122223333:role/eks-nodes"})):
        passes = statements_with(printed(config, role), "iam:PassRole")
        assert {r for s in passes for r in resources(s)} == want
        assert all(s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes)
    assert not statements_with(printed(config, "plan"), "iam:PassRole")


DESTRUCTIVE = ["ec2:TerminateInstances", "ec2:DeleteSecurityGroup", "ec2:DeleteKeyPair", "ec2:DeregisterImage",
               "ec2:DeleteSnapshot", "ec2:StopInstances", "ec2:AuthorizeSecurityGroupIngress"]


@pytest.mark.parametrize("role", ["bake", "lifecycle"])
def test_destructive_actions_only_on_what_the_tool_tagged(config: Path, role: str) -> None:
    doc = printed(config, role)
    found = [a for a in DESTRUCTIVE if statements_with(doc, a)]
    assert "ec2:TerminateInstances" in found and "ec2:DeregisterImage" in found
    for action in found:
        for st in statements_with(doc, action):
            assert st["Condition"] == {"StringEquals": {f"aws:ResourceTag/{tags.KEY_TOOL}": tags.TOOL}}, (action, st)


def test_creation_requires_the_tool_tag(config: Path) -> None:
    doc = printed(config, "bake")
    for action in ("ec2:ImportKeyPair", "ec2:CreateSecurityGroup"):
        for st in statements_with(doc, action):
            if any(":vpc/" in r for r in resources(st)):
                continue  # the VPC the group goes into carries no request tag
            assert st["Condition"] == {"StringEquals": {f"aws:RequestTag/{tags.KEY_TOOL}": tags.TOOL}}
    (on_create,) = [s for s in statements_with(doc, "ec2:CreateTags") if "RunInstances" in json.dumps(s)]
    assert set(on_create["Condition"]["StringEquals"]["ec2:CreateAction"]) == {
        "RunInstances", "CreateSecurityGroup", "ImportKeyPair", "CreateImage"}


def test_plan_is_read_only(config: Path) -> None:
    for action in all_actions(printed(config, "plan")):
        verb = action.split(":", 1)[1]
        assert verb.startswith(("Describe", "Get", "List", "BatchGet")), action


def test_rows_only_when_the_config_needs_them(tmp_path: Path) -> None:
    path = tmp_path / "bake.toml"
    path.write_text('[pools.a]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["quay.io/org/env:rev9"]\nlaunch = "none"\n')
    doc = printed(path, "bake")
    acts = all_actions(doc)
    assert not {"ssm:GetParameter", "ecr:GetAuthorizationToken", "iam:PassRole", "kms:CreateGrant", "ec2:CopyImage",
                "ec2:ModifyImageAttribute", "ec2:ModifySnapshotAttribute", "ec2:DescribeRegions"} & acts
    assert not {"ssm:PutParameter", "ec2:EnableFastSnapshotRestores", "ec2:DescribeFastSnapshotRestores"} & all_actions(
        printed(path, "deploy"))
    assert "ec2:RunInstances" in acts
    assert '"arn:aws:ec2:*:*:instance/*"' in json.dumps(doc)  # no region, no account named: any


def test_every_row_names_its_path_and_proof() -> None:
    for g in GRANTS:
        assert g.path and g.proof and g.actions and set(g.roles) <= set(ROLES), g


def test_unknown_role_and_bad_config_are_usage_errors(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "bake", "iam-policy", "--role", "admin"], capture_output=True, text=True)
    assert p.returncode == 2 and "invalid choice: 'admin'" in p.stderr
    p = subprocess.run([sys.executable, "-m", "bake", "iam-policy", "--role", "bake", "--config", str(tmp_path / "no.toml")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "no.toml: no such file" in p.stderr


# --- parliament ----------------------------------------------------------------------------------

def unexplained_findings(text: str) -> list[str]:
    """parliament's findings, less one justified kind: RESOURCE_MISMATCH asks every statement
    that holds ec2:RunInstances (CreateImage, CreateSecurityGroup, CreateTags) to name every
    resource type the action requires. We split those actions over statements on purpose, so a
    tag condition applies only to the resources that can carry the tag (AWS's own examples for
    RunInstances do the same). The finding is accepted only when another statement of the same
    policy allows the action on a resource of the required format."""
    import parliament
    from parliament.statement import is_arn_strictly_valid

    doc = json.loads(text)
    out = []
    for f in parliament.analyze_policy_string(text).findings:
        if f.issue == "RESOURCE_MISMATCH":
            missing = [d for d in f.detail if not any(
                is_arn_strictly_valid("", d["required_format"], r)
                for s in statements_with(doc, d["action"]) for r in resources(s))]
            if not missing:
                continue
        out.append(f"{f.issue}: {f.detail} at {f.location}")
    return out


@pytest.mark.parametrize("role", ROLES)
def test_parliament_finds_nothing(config: Path, role: str) -> None:
    text = json.dumps(printed(config, role))
    assert unexplained_findings(text) == []


def test_parliament_would_catch_a_bad_row() -> None:
    bad = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": "arn:aws:ec2:us-east-1:123456789012:volume/*"},
        {"Effect": "Allow", "Action": ["ec2:DescribeImages"], "Resource": "arn:aws:ec2:us-east-1::image/*"}]})
    found = unexplained_findings(bad)
    assert any("RESOURCE_MISMATCH" in f and "image" in f for f in found), found


# --- the refusal message -------------------------------------------------------------------------

def test_refusal_names_the_action_the_caller_and_the_role() -> None:
    set_command("build")
    try:
        msg = describe("AccessDenied", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
                                       "ec2:RunInstances")
        assert msg == ("AccessDenied: ec2:RunInstances is not allowed for arn:aws:iam::123456789012:user/ci; "
                       "python -m bake iam-policy --role bake prints the policy this needs")
        # EC2 on AWS: UnauthorizedOperation, with the resource.
        msg = describe("UnauthorizedOperation", "You are not authorized to perform this operation. User: "
                       "arn:aws:sts::1:assumed-role/ci/gh is not authorized to perform: ec2:TerminateInstances on "
                       "resource: arn:aws:ec2:us-east-1:1:instance/i-0abc because no identity-based policy allows "
                       "the ec2:TerminateInstances action. Encoded authorization failure message: xyz")
        assert msg.startswith("AccessDenied: ec2:TerminateInstances is not allowed for arn:aws:sts::1:assumed-role/ci/gh "
                              "on arn:aws:ec2:us-east-1:1:instance/i-0abc; python -m bake iam-policy --role bake")
    finally:
        set_command(None)


def test_docs_show_the_policies_printed_for_the_sample_config(tmp_path: Path) -> None:
    """docs/iam.md's four policies are what the command prints for the sandbox's bake.toml with
    the distribution and first-start keys the IAM tests add (tests/iam/iam_flows.py)."""
    import re

    from bake_sandbox import Sandbox
    from tests.iam.iam_flows import project_config

    sb = Sandbox(state_dir=tmp_path / "state")
    path = tmp_path / "bake.toml"
    path.write_text(project_config(sb.layout, sb.samples.images(sb.layout), sb.samples.ecr_images(),
                                   tmp_path / "terraform.tfstate"))
    text = (ROOT / "docs" / "iam.md").read_text()
    for role in ROLES:
        m = re.search(rf"### `{role}`\n\n```json\n(.*?)\n```", text, re.S)
        assert m, f"docs/iam.md has no policy for {role}"
        assert json.loads(m[1]) == printed(path, role, "--account", "123456789012"), role


def test_a_refusal_botocore_could_not_parse_is_still_named() -> None:
    """moto answers a refused JSON-protocol call (SSM) in XML: code "403", the body as message."""
    from botocore.exceptions import ClientError

    from bake.aws import describe_error

    body = ("<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/x "
            "is not authorized to perform: ssm:GetParameter</Message></Error></Errors></ErrorResponse>")
    e = ClientError({"Error": {"Code": "403", "Message": body}}, "GetParameter")
    set_command("plan")
    try:
        assert describe_error(e) == ("AWS: AccessDenied: ssm:GetParameter is not allowed for "
                                     "arn:aws:iam::123456789012:user/x; python -m bake iam-policy --role plan prints the policy this needs")
        other = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetParameter")
        assert "iam-policy" not in describe_error(other)
    finally:
        set_command(None)


def test_node_groups_by_cluster_and_name(config: Path) -> None:
    deploy = printed(config, "deploy")
    (ng,) = statements_with(deploy, "eks:CreateNodegroup")
    assert resources(ng) == ["arn:aws:eks:eu-west-1:111122223333:cluster/prod",
                             "arn:aws:eks:eu-west-1:111122223333:nodegroup/prod/ng/*"]
    assert all_actions(printed(config, "plan")) >= {"eks:DescribeNodegroup"}


def test_console_only_when_a_pool_checks_host_keys_there(tmp_path: Path) -> None:
    path = tmp_path / "bake.toml"
    base = '[pools.a]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["quay.io/org/env:rev9"]\n'
    path.write_text(base + 'host_key_policy = "tofu"\n')
    assert "ec2:GetConsoleOutput" not in all_actions(printed(path, "bake"))
    path.write_text(base)
    assert "ec2:GetConsoleOutput" in all_actions(printed(path, "bake"))


NODE_REGION_POOL = """
[pools.far]
base_ami = "ami-0123456789abcdef0"
images = ["quay.io/org/env:rev9"]
node_region = "us-east-1"
[pools.far.distribute]
regions = ["us-east-1"]
[pools.far.asg]
subnet_ids = ["subnet-0def"]
"""


def stack_resources(doc: dict, action: str) -> set[str]:
    return {r for s in statements_with(doc, action) for r in resources(s)}


def test_stack_rows_cover_every_pools_node_region(config: Path, tmp_path: Path) -> None:
    # Without node_region the stack lives in the bake's region only.
    deploy = printed(config, "deploy")
    assert stack_resources(deploy, "ec2:CreateLaunchTemplate") == {"arn:aws:ec2:eu-west-1:111122223333:launch-template/*"}
    assert stack_resources(deploy, "autoscaling:CreateAutoScalingGroup") == {
        "arn:aws:autoscaling:eu-west-1:111122223333:autoScalingGroup:*:autoScalingGroupName/cpu",
        "arn:aws:autoscaling:eu-west-1:111122223333:autoScalingGroup:*:autoScalingGroupName/old"}
    assert "us-east-1" not in json.dumps(deploy) + json.dumps(printed(config, "plan"))
    far = tmp_path / "far.toml"
    far.write_text(CONFIG + NODE_REGION_POOL)
    deploy = printed(far, "deploy")
    assert stack_resources(deploy, "ec2:CreateLaunchTemplate") == {
        "arn:aws:ec2:eu-west-1:111122223333:launch-template/*", "arn:aws:ec2:us-east-1:111122223333:launch-template/*"}
    groups = stack_resources(deploy, "autoscaling:UpdateAutoScalingGroup")
    assert "arn:aws:autoscaling:us-east-1:111122223333:autoScalingGroup:*:autoScalingGroupName/far" in groups
    assert "arn:aws:autoscaling:eu-west-1:111122223333:autoScalingGroup:*:autoScalingGroupName/far" in groups
    launch = stack_resources(deploy, "ec2:RunInstances")  # the group launches from the copy in us-east-1
    assert {"arn:aws:ec2:us-east-1::image/*", "arn:aws:ec2:us-east-1:111122223333:launch-template/*"} <= launch
    assert "arn:aws:autoscaling:us-east-1:111122223333:launchConfiguration:*:launchConfigurationName/old-*" in \
        stack_resources(deploy, "autoscaling:CreateLaunchConfiguration")
    assert "arn:aws:eks:us-east-1:111122223333:nodegroup/prod/ng/*" in stack_resources(deploy, "eks:CreateNodegroup")
    assert "arn:aws:eks:us-east-1:111122223333:nodegroup/prod/ng/*" in stack_resources(printed(far, "plan"),
                                                                                       "eks:DescribeNodegroup")
    # Still scoped: the builder's rows stay in the bake's region, PassRole names no region.
    bake = printed(far, "bake")
    assert not any("us-east-1" in r for r in stack_resources(bake, "ec2:TerminateInstances") if ":instance/" in r)
    assert all(":iam::" in r for r in stack_resources(deploy, "iam:PassRole"))


def test_a_data_volume_pool_adds_its_snapshot_and_only_on_the_tools_own(tmp_path: Path) -> None:
    """cache = "data-volume" (docs/data-volume.md): CreateSnapshot of a tool-tagged volume into a
    snapshot that carries the tool's tag; DescribeSnapshots for plan's skip and the bake's wait."""
    base = 'region = "us-east-1"\n[pools.p]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["nginx:1.27"]\n'
    (tmp_path / "ami.toml").write_text(base)
    (tmp_path / "dv.toml").write_text(base + 'cache = "data-volume"\n')
    ami, dv = printed(tmp_path / "ami.toml", "bake"), printed(tmp_path / "dv.toml", "bake")
    assert "ec2:CreateSnapshot" not in all_actions(ami)
    on_snapshot, on_volume = sorted(statements_with(dv, "ec2:CreateSnapshot"), key=lambda s: resources(s)[0].split(":")[-1])
    assert resources(on_snapshot) == ["arn:aws:ec2:us-east-1::snapshot/*"] and on_snapshot["Condition"] == TOOL_TAGGING
    assert resources(on_volume)[0].endswith(":volume/*") and on_volume["Condition"] == TOOL_TAGGED
    [tag] = [s for s in statements_with(dv, "ec2:CreateTags") if s["Condition"]["StringEquals"].get("ec2:CreateAction")
             == "CreateSnapshot"]
    assert tag["Condition"]["StringEquals"][f"aws:RequestTag/{tags.KEY_TOOL}"] == tags.TOOL
    assert "ec2:DescribeSnapshots" in all_actions(printed(tmp_path / "dv.toml", "plan"))


def test_a_data_volume_pools_copies_add_copy_snapshot_and_not_copy_image(tmp_path: Path) -> None:
    """[distribute] regions of a data-volume pool: CopySnapshot on snapshots in the bake's and the
    copy's region, its tags only through CopySnapshot, the base AMI's parameter read in the copy's
    region (that region's stock AMI); no CopyImage, which only an AMI pool's copies need."""
    param = "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
    (tmp_path / "dv.toml").write_text(
        f'region = "us-east-1"\n[pools.p]\nbase_ami = "ssm:{param}"\nimages = ["nginx:1.27"]\n'
        'cache = "data-volume"\n[pools.p.distribute]\nregions = ["eu-west-1"]\naccounts = ["210987654321"]\n')
    bake = printed(tmp_path / "dv.toml", "bake")
    assert "ec2:CopyImage" not in all_actions(bake)
    [copy] = statements_with(bake, "ec2:CopySnapshot")
    assert set(resources(copy)) == {"arn:aws:ec2:us-east-1::snapshot/*", "arn:aws:ec2:eu-west-1::snapshot/*"}
    [tag] = [s for s in statements_with(bake, "ec2:CreateTags") if s["Condition"]["StringEquals"].get("ec2:CreateAction")
             == "CopySnapshot"]
    assert resources(tag) == ["arn:aws:ec2:eu-west-1::snapshot/*"]
    assert tag["Condition"]["StringEquals"][f"aws:RequestTag/{tags.KEY_TOOL}"] == tags.TOOL
    [read] = statements_with(printed(tmp_path / "dv.toml", "plan"), "ssm:GetParameter")
    assert set(resources(read)) == {f"arn:aws:ssm:{r}:*:parameter{param}" for r in ("us-east-1", "eu-west-1")}
    [share] = statements_with(bake, "ec2:ModifySnapshotAttribute")
    assert "arn:aws:ec2:eu-west-1::snapshot/*" in resources(share)
