"""An AWS refusal, said as what it is: which action was refused to whom, and which command
prints the policy that allows it.

The CLI names the role of the running command once (``set_command``); library code turns any
refused call into the message with ``message(exc)`` (through ``bake.aws.describe_error``).
"""

from __future__ import annotations

import re

# The role whose policy (``python -m bake iam-policy --role ROLE``) each command needs.
COMMAND_ROLES = {"build": "bake", "plan": "plan", "review": "plan", "adopt": "plan",
                 "prune": "lifecycle", "sweep": "lifecycle"}
# EC2 says UnauthorizedOperation; most services AccessDenied or AccessDeniedException.
REFUSAL_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"})
_DETAIL = re.compile(r"User: (?P<who>\S+) is not authorized to perform: (?P<action>[\w-]+:[\w-]+)"
                     r"(?: on resource: (?P<what>\S+))?")

_role: str | None = None


def set_command(command: str | None) -> None:
    global _role
    _role = COMMAND_ROLES.get(command or "")


def hint(role: str | None = None) -> str:
    role = role or _role
    return f"python -m bake iam-policy --role {role} prints the policy this needs" if role else \
        "python -m bake iam-policy --role ROLE prints the policy each use needs"


def is_refusal(code: str | None) -> bool:
    return code in REFUSAL_CODES


def describe(code: str, text: str, operation: str | None = None) -> str:
    """``AccessDenied: ec2:RunInstances is not allowed for arn:...; python -m bake iam-policy ...``"""
    m = _DETAIL.search(text or "")
    if m:
        what = f" on {m['what'].rstrip('.')}" if m["what"] else ""
        return f"AccessDenied: {m['action']} is not allowed for {m['who']}{what}; {hint()}"
    return f"AccessDenied: {operation or 'the call'} is not allowed ({code}: {text}); {hint()}"


def message(exc: BaseException) -> str | None:
    """The message for a refused botocore call, or None when ``exc`` is not a refusal."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    err = response.get("Error", {})
    code, text = err.get("Code") or "", err.get("Message") or ""
    # moto answers a refused JSON-protocol call (SSM, ECR) in XML, which botocore cannot parse:
    # the code is then the HTTP status and the message the raw body.
    if not is_refusal(code) and not (code == "403" and _DETAIL.search(text)):
        return None
    return describe(code, text, getattr(exc, "operation_name", None))
