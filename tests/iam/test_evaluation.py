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
