"""The proofs' IAM evaluator (tests/support/iam_eval.py) against AWS's own examples and rules,
from the IAM User Guide pages named in each test (read 2026-12-06). No sandbox needed."""

from __future__ import annotations

import pytest

from support.iam_eval import Request, arn_like, evaluate


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allowed(doc: dict, action: str, resource: str = "*", **context: str | tuple[str, ...]) -> bool:
    return evaluate(doc, Request(action, resource, context)).allowed


# "The difference between explicit and implicit denies": AllowGetList and DenyReports.
GET_LIST_NO_REPORTS = policy(
    {"Sid": "AllowGetList", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
    {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"},
)


def test_explicit_and_implicit_denies_as_the_user_guide_shows_them() -> None:
    assert allowed(GET_LIST_NO_REPORTS, "iam:GetUser")
    assert allowed(GET_LIST_NO_REPORTS, "iam:listroles")  # action names are not case-sensitive
    d = evaluate(GET_LIST_NO_REPORTS, Request("iam:CreatePolicy", "*"))
    assert not d.allowed and "implicit" in d.reason
    d = evaluate(GET_LIST_NO_REPORTS, Request("iam:GetCredentialReport", "*"))
    assert not d.allowed and "DenyReports" in d.reason
    # An Allow elsewhere does not beat the Deny ("Policy evaluation logic").
    more = policy(*GET_LIST_NO_REPORTS["Statement"], {"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert not allowed(more, "iam:GetCredentialReport") and allowed(more, "iam:CreatePolicy")


def test_not_action_and_not_resource() -> None:
    # "IAM JSON policy elements: NotAction": everything but IAM; "NotResource": all but one bucket.
    doc = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
                 {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::amzn-s3-demo-bucket",
                                                                      "arn:aws:s3:::amzn-s3-demo-bucket/*"]})
    assert allowed(doc, "ec2:DescribeImages") and not allowed(doc, "iam:CreateUser")
    assert allowed(doc, "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/key")
    assert not allowed(doc, "s3:GetObject", "arn:aws:s3:::other-bucket/key")


def test_arns_match_part_by_part_and_case_sensitively() -> None:
    assert arn_like("arn:aws:ec2:us-east-1:123456789012:instance/*", "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc")
    assert not arn_like("arn:aws:ec2:us-east-1:123456789012:instance/*", "arn:aws:ec2:us-west-2:123456789012:instance/i-0abc")
    assert not arn_like("arn:aws:ec2:us-east-1:123456789012:instance/*", "arn:aws:ec2:us-east-1:123456789012:Instance/i-0abc")
    # An AMI's and a public SSM parameter's ARN name no account: "*" matches the empty part.
    assert arn_like("arn:aws:ssm:us-east-1:*:parameter/aws/service/x", "arn:aws:ssm:us-east-1::parameter/aws/service/x")
    # A wildcard stays in its part: "*" in the region does not swallow the account.
    assert not arn_like("arn:aws:ec2:*:instance/*", "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc")
    # The resource part keeps its own colons (Auto Scaling's group ARNs).
    assert arn_like("arn:aws:autoscaling:us-east-1:1:autoScalingGroup:*:autoScalingGroupName/cpu",
                    "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:0f-uuid:autoScalingGroupName/cpu")
    # A resource-level pattern never matches "*", the resource of an action without resource-level permission.
    assert not allowed(policy({"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "arn:aws:ec2:*::image/*"}),
                       "ec2:DescribeImages", "*")


def test_a_missing_key_fails_a_condition_but_a_negated_one() -> None:
    # "Condition operators", the box at the top: a key not in the request makes the condition
    # false, except for negated operators (true), ...IfExists and Null.
    tag = {"StringEquals": {"aws:ResourceTag/team": "a"}}
    not_tag = {"StringNotEquals": {"aws:ResourceTag/team": "b"}}
    for cond, when_missing in ((tag, False), (not_tag, True)):
        doc = policy({"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*", "Condition": cond})
        assert allowed(doc, "ec2:StopInstances") is when_missing
    doc = policy({"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*", "Condition": tag})
    assert allowed(doc, "ec2:StopInstances", **{"aws:resourcetag/TEAM": "a"})  # key names are not case-sensitive
    assert not allowed(doc, "ec2:StopInstances", **{"aws:ResourceTag/team": "A"})  # values are


def test_if_exists_as_the_user_guide_shows_it() -> None:
    # "...IfExists condition operators": instance types t1/t2/m3, or no instance type in the request.
    doc = policy({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*",
                  "Condition": {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}})
    assert allowed(doc, "ec2:RunInstances")
    assert allowed(doc, "ec2:RunInstances", **{"ec2:InstanceType": "t2.micro"})
    assert not allowed(doc, "ec2:RunInstances", **{"ec2:InstanceType": "m5.large"})


def test_null_checks_whether_a_key_is_there() -> None:
    # "Condition operators", Null: "true" when the key is absent.
    doc = policy({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Null": {"aws:TokenIssueTime": "true"}}},
                 {"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert not allowed(doc, "s3:ListBucket")
    assert allowed(doc, "s3:ListBucket", **{"aws:TokenIssueTime": "2026-12-06T00:00:00Z"})


def test_values_or_keys_and() -> None:
    # "Condition" element, multiple keys and values: values of one key OR, keys and operators AND.
    doc = policy({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*", "Condition": {
        "StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateVolume"], "aws:RequestTag/env": "dev"},
        "Bool": {"aws:SecureTransport": "true"}}})
    ok = {"ec2:CreateAction": "CreateVolume", "aws:RequestTag/env": "dev", "aws:SecureTransport": "true"}
    assert allowed(doc, "ec2:CreateTags", **ok)
    for key, bad in (("ec2:CreateAction", "CopyImage"), ("aws:RequestTag/env", "prod"), ("aws:SecureTransport", "false")):
        assert not allowed(doc, "ec2:CreateTags", **{**ok, key: bad}), key


def test_set_operators_on_multivalued_keys() -> None:
    # "Single-valued vs. multivalued context keys": ForAllValues holds for the empty or missing
    # key, ForAnyValue does not.
    all_created = policy({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
                          "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "Created*"}}})
    assert allowed(all_created, "ec2:CreateTags", **{"aws:TagKeys": ("CreatedBy", "CreatedAt")})
    assert not allowed(all_created, "ec2:CreateTags", **{"aws:TagKeys": ("CreatedBy", "Owner")})
    assert allowed(all_created, "ec2:CreateTags")
    any_env = policy({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
                      "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}})
    assert allowed(any_env, "ec2:CreateTags", **{"aws:TagKeys": ("environment", "owner")})
    assert not allowed(any_env, "ec2:CreateTags", **{"aws:TagKeys": ("owner",)})
    assert not allowed(any_env, "ec2:CreateTags")
    with pytest.raises(ValueError, match="multivalued"):
        allowed(policy({"Effect": "Allow", "Action": "*", "Resource": "*",
                        "Condition": {"StringEquals": {"aws:TagKeys": "a"}}}), "ec2:CreateTags", **{"aws:TagKeys": ("a",)})


def test_arn_operators_and_what_it_refuses_to_guess() -> None:
    doc = policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
                  "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:123456789012:instance/*"}}})
    assert allowed(doc, "iam:PassRole", **{"aws:SourceArn": "arn:aws:ec2:us-east-1:123456789012:instance/i-1"})
    assert not allowed(doc, "iam:PassRole", **{"aws:SourceArn": "arn:aws:ec2:us-east-1:210987654321:instance/i-1"})
    for unsupported in ({"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
                        {"StringEquals": {"aws:username": "${aws:username}"}}):
        with pytest.raises(ValueError):
            allowed(policy({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": unsupported}), "s3:GetObject",
                    **{"aws:CurrentTime": "x", "aws:username": "x"})


# --- what a recorded call is authorized on (tests/iam/authz.py) -----------------------------------

def _call(action: str, params: dict, tags: dict | None = None, region: str = "us-east-1"):  # noqa: ANN202
    from tests.iam import authz

    return authz.Call(action, "u", region, params, tags or {}, True)


def test_run_instances_is_authorized_on_every_resource_it_touches() -> None:
    from tests.iam.authz import Deriver

    tool = {"bake:tool": "eks-image-bake"}
    call = _call("ec2:RunInstances", {
        "ImageId": "ami-0abc", "KeyName": "k", "SecurityGroupId.1": "sg-01",
        "TagSpecification.1.ResourceType": "instance", "TagSpecification.1.Tag.1.Key": "bake:tool",
        "TagSpecification.1.Tag.1.Value": "eks-image-bake"}, {"key-pair/k": tool, "sg-01": tool})
    checks = {(c.request.action, c.request.resource): c.request.context for c in Deriver("1").checks(call)}
    assert set(checks) == {
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/i-new"),
        ("ec2:CreateTags", "arn:aws:ec2:us-east-1:1:instance/i-new"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:volume/vol-new"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:network-interface/eni-new"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1::image/ami-0abc"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:subnet/subnet-default"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:security-group/sg-01"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:key-pair/k"),
    }
    assert checks[("ec2:CreateTags", "arn:aws:ec2:us-east-1:1:instance/i-new")]["ec2:CreateAction"] == "RunInstances"
    assert checks[("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/i-new")]["aws:RequestTag/bake:tool"] == "eks-image-bake"
    assert "aws:RequestTag/bake:tool" not in checks[("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:volume/vol-new")]
    assert checks[("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:key-pair/k")]["ec2:ResourceTag/bake:tool"] == "eks-image-bake"


def test_the_partition_comes_from_the_region_and_unknown_calls_are_refused() -> None:
    from tests.iam.authz import Deriver

    (check,) = Deriver("1").checks(_call("ec2:TerminateInstances", {"InstanceId.1": "i-1"}, region="cn-north-1"))
    assert check.request.resource == "arn:aws-cn:ec2:cn-north-1:1:instance/i-1" and "aws:ResourceTag/bake:tool" not in check.request.context
    (check,) = Deriver("1").checks(_call("ec2:DeleteSnapshot", {"SnapshotId": "snap-1"}, region="us-gov-west-1"))
    assert check.request.resource == "arn:aws-us-gov:ec2:us-gov-west-1::snapshot/snap-1"
    with pytest.raises(KeyError, match="ec2:DeleteVolume"):
        Deriver("1").checks(_call("ec2:DeleteVolume", {"VolumeId": "vol-1"}))
    assert Deriver("1").checks(_call("sts:GetCallerIdentity", {})) == []
    (check,) = Deriver("1").checks(_call("ec2:DescribeImages", {"Owner.1": "self"}))
    assert check.request.resource == "*"


def test_copy_image_is_authorized_on_the_source_the_copy_its_tags_and_its_key() -> None:
    from bake.iam.grants import EBS_KMS_ACTIONS
    from tests.iam.authz import Deriver

    key = "arn:aws:kms:us-west-2:1:key/k1"
    call = _call("ec2:CopyImage", {"SourceImageId": "ami-1", "SourceRegion": "us-east-1", "KmsKeyId": key, "Encrypted": "true",
                                   "TagSpecification.1.ResourceType": "image", "TagSpecification.1.Tag.1.Key": "a",
                                   "TagSpecification.1.Tag.1.Value": "b"}, {"ami-1": {"a": "b"}}, region="us-west-2")
    checks = [(c.request.action, c.request.resource, c.request.context.get("ec2:CreateAction")) for c in Deriver("1").checks(call)]
    assert ("ec2:CopyImage", "arn:aws:ec2:us-east-1::image/ami-1", None) in checks
    assert ("ec2:CopyImage", "arn:aws:ec2:us-west-2::image/ami-new", None) in checks
    assert ("ec2:CreateTags", "arn:aws:ec2:us-west-2::image/ami-new", "CopyImage") in checks
    assert {(a, r) for a, r, _ in checks if a.startswith("kms:")} == {(a, key) for a in EBS_KMS_ACTIONS}


def test_checks_are_held_to_the_service_authorization_reference() -> None:
    from tests.iam.authz import Check, Deriver, sar_problems

    good = Deriver("1").checks(_call("ec2:RunInstances", {"ImageId": "ami-1", "SubnetId": "subnet-1", "SecurityGroupId.1": "sg-1"}))
    assert sar_problems(good) == []
    call = good[0].call
    wrong = [Check(Request("ec2:DeleteSnapshot", "arn:aws:ec2:us-east-1:1:instance/i-1"), call),
             Check(Request("ec2:DescribeImages", "arn:aws:ec2:us-east-1::image/ami-1"), call),
             Check(Request("ec2:TerminateInstances", "arn:aws:ec2:us-east-1:1:instance/i-1", {"ec2:CreateAction": "x"}), call),
             Check(Request("ec2:NoSuchThing", "*"), call)]
    problems = sar_problems(wrong)
    assert len(problems) == 4 and "no resource type" in problems[0] and "'*' only" in problems[1], problems
    assert "ec2:CreateAction is not listed" in problems[2] and "no such action" in problems[3], problems
    missing = [c for c in good if "subnet/" not in c.request.resource]
    assert any("required resource type(s) ['subnet']" in p for p in sar_problems(missing))
