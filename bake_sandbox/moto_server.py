"""Entry point of the sandbox's moto server process: ``python -m bake_sandbox.moto_server -H HOST -p PORT``.

It runs moto's own server, with one change: AWS itself publishes the EKS-optimized AMI
parameters under ``/aws/service/eks/``, and moto (like AWS) refuses a PutParameter there. Here
PutParameter on that prefix stores the value as if AWS had published it, so the sandbox can
seed the base AMI and a test can "publish" a new one to force a rebake. It also answers EBS
fast snapshot restore, which moto lacks (``bake_sandbox.moto_fsr``), and tags a copy with
CopyImage's TagSpecifications, which moto ignores (``bake_sandbox.moto_copy_tags``); it backs
attached data volumes and their snapshots with real bytes (``bake_sandbox.moto_volumes``). And it refuses
what AWS documents as refused and moto accepts (``bake_sandbox.moto_strict``; ``BAKE_MOTO_STRICT=0``
leaves that out, for the one test that shows moto's own answer beside AWS's).

With ``BAKE_MOTO_IAM=1`` (``bake_sandbox.iam_moto`` sets it; the shared sandbox never does) two
more changes serve the least-privilege proof:

- moto checks a signed request's action against the caller's identity policies, but it passes
  ``*`` as the resource of every call outside S3, so a statement scoped to ARNs would match
  nothing. Here ``*`` (moto does not know the resource) matches any ``Resource``: the Action
  element is proven, the Resource and Condition elements are not (docs/iam.md lists them).
- every authorization decision is appended as a JSON line (action, caller, allowed) to the
  file named by ``BAKE_MOTO_ACTION_LOG``: the record of which calls each use makes. The line
  also holds what AWS would authorize the call on, which moto does not look at: the request's
  region, its parameters, and the tags the EC2 resources it names carry at that moment
  (``aws:ResourceTag``); tests/iam/authz.py derives the resource ARNs and condition keys from them.
"""

from __future__ import annotations

import sys
import json
import os
import re
import threading
from typing import Any

PUBLISHED_PREFIX = "/aws/service/eks/"


def _allow_published_parameters() -> None:
    from moto.core.utils import utcnow
    from moto.ssm.exceptions import ParameterAlreadyExists
    from moto.ssm.models import Parameter, SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.put_parameter

    def put_parameter(self: Any, name: str, description: str, value: str, parameter_type: str,
                      allowed_pattern: str, keyid: str, overwrite: bool, *args: Any, **kwargs: Any) -> Any:
        if not name.startswith(PUBLISHED_PREFIX):
            return original(self, name, description, value, parameter_type, allowed_pattern, keyid, overwrite, *args, **kwargs)
        versions = self._parameters[name]
        if versions and not overwrite:
            raise ParameterAlreadyExists()
        versions.append(Parameter(
            account_id=self.account_id, name=name, value=value, parameter_type=parameter_type,
            description=description, allowed_pattern=None, keyid=None, last_modified_date=utcnow(),
            version=len(versions) + 1, data_type=kwargs.get("data_type") or "text",
        ))
        return versions[-1]

    SimpleSystemManagerBackend.put_parameter = put_parameter  # type: ignore[method-assign]


def _iam_mode(action_log: str | None) -> None:
    from moto.iam.access_control import IAMPolicyStatement, IAMRequest

    original_match = IAMPolicyStatement._check_element_matches

    def check_element_matches(self: Any, element: Any, value: str) -> bool:
        if element == "Resource" and value == "*":
            return True
        return original_match(self, element, value)

    IAMPolicyStatement._check_element_matches = check_element_matches  # type: ignore[method-assign]
    if not action_log:
        return
    original_check = IAMRequest.check_action_permitted
    lock = threading.Lock()

    def check_action_permitted(self: Any, resource: str) -> None:
        allowed = False
        try:
            original_check(self, resource)
            allowed = True
        finally:
            record: dict[str, Any] = {"action": self._action, "caller": self._access_key.arn, "allowed": allowed,
                                      "region": self._region}
            try:
                record["params"] = _params(self)
                record["tags"] = _ec2_tags(self, record["params"])
                record["launches"] = _template_tags(self, record["params"])
            except Exception as e:  # noqa: BLE001 - the record says so; the call itself goes on
                record["record_error"] = repr(e)
            line = json.dumps(record)
            with lock, open(action_log, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    IAMRequest.check_action_permitted = check_action_permitted  # type: ignore[method-assign]


def _params(request: Any) -> dict[str, Any]:
    """The call's parameters: a JSON body (SSM, ECR, KMS, EKS), else the query form (EC2, Auto
    Scaling), one value per key."""
    body = request._body.decode("utf-8", "replace") if isinstance(request._body, bytes) else request._body or ""
    if body.lstrip().startswith("{"):
        try:
            return {"_path": request._path, **json.loads(body)}
        except ValueError:
            pass
    data = request._data if isinstance(request._data, dict) else {}
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in data.items()
            if k not in ("Action", "Version")}


_EC2_ID = re.compile(r"^(i|sg|ami|snap|vol|key|subnet|vpc|eni|lt)-[0-9a-z]+$")


def _ec2_tags(request: Any, params: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The tags, as they are before the call runs, of every EC2 resource the call names (by id,
    or a key pair by name); CopyImage's source AMI is looked up in its own region."""
    if request._service != "ec2":
        return {}
    from moto.ec2.models import ec2_backends

    def backend(region: str) -> Any:
        return ec2_backends[request.account_id][region]

    out: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str):
                continue
            region = params.get("SourceRegion", request._region) if key == "SourceImageId" else request._region
            if _EC2_ID.match(v):
                out[v] = dict(backend(region).tags.get(v, {}))
            elif key == "KeyName" and v in backend(region).key_pairs:
                out[f"key-pair/{v}"] = dict(backend(region).tags.get(backend(region).key_pairs[v].id, {}))
    return out


def _template_tags(request: Any, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For a group given a launch template: what the caller must be allowed to launch from that
    template version (AWS checks ec2:RunInstances on its AMI and groups, and ec2:CreateTags for
    what its tag specifications tag: resource type -> tags)."""
    template = params.get("LaunchTemplate.LaunchTemplateId")
    if request._service != "autoscaling" or not template:
        return {}
    from moto.ec2.models import ec2_backends

    lt = ec2_backends[request.account_id][request._region].launch_templates.get(template)
    if lt is None:
        return {}
    version = params.get("LaunchTemplate.Version", "$Default")
    data = lt.latest_version().data if version == "$Latest" else lt.get_version(version).data
    # moto files the template's own tags among them as "launch-template": not a launch's.
    tagged = {s["ResourceType"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])}
              for s in data.get("TagSpecifications", []) if s["ResourceType"] != "launch-template"}
    return {template: {"tags": tagged, "image": data.get("ImageId"),
                       "security_groups": list(data.get("SecurityGroupIds") or data.get("SecurityGroupId") or [])}}


def main(argv: list[str]) -> None:
    _allow_published_parameters()
    from bake_sandbox import moto_copy_tags, moto_fsr, moto_strict, moto_volumes

    moto_fsr.install()
    moto_copy_tags.install()
    moto_volumes.install()
    if os.environ.get("BAKE_MOTO_STRICT") != "0":
        moto_strict.install()  # last: it wraps the methods the two above add or wrap
    if os.environ.get("BAKE_MOTO_IAM") == "1":
        _iam_mode(os.environ.get("BAKE_MOTO_ACTION_LOG"))
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
