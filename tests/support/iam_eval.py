"""An IAM identity-policy evaluator for the least-privilege proofs: is one request (action,
resource ARN, condition context) allowed by one policy document?

No maintained evaluator exists in the registries this project reaches (docs/iam.md, "The
evaluation proof", says what was checked), so this is a small one, written from AWS's pages
(IAM User Guide, read 2026-12-06) and tested against their examples (tests/iam/test_evaluation.py):

- "Policy evaluation logic" / "The difference between explicit and implicit denies": a matching
  Deny statement wins over any Allow; without a matching Allow the request is denied (implicit).
- "IAM JSON policy elements: Action / NotAction / Resource / NotResource": ``*`` and ``?``
  wildcards; action names are not case-sensitive, ARNs are; an ARN's six colon-separated parts
  are matched one by one (a wildcard does not cross a colon before the resource part).
- "IAM JSON policy elements: Condition operators": every operator in a statement's Condition
  must hold (AND), and every key under it (AND); several values for one key match if any does
  (OR). A key missing from the request makes a condition false, except for the negated
  operators (true), ``...IfExists`` (true) and ``Null``.
- "Single-valued vs. multivalued context keys": ``ForAllValues`` holds when every request value
  matches one of the policy's (and when the key is missing or empty), ``ForAnyValue`` when at
  least one does (never when the key is missing); a multivalued key without either is refused
  here rather than guessed.

What it does not do (the tool's policies use none of it; a policy that does makes it raise):
policy variables (``${...}``), the Date and IP address operators, resource-based policies,
permission boundaries, SCPs and session policies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = str | tuple[str, ...]  # a tuple: a multivalued context key (aws:TagKeys)


@dataclass(frozen=True)
class Request:
    action: str  # "ec2:TerminateInstances"
    resource: str  # an ARN, or "*" for an action with no resource-level permission
    context: Mapping[str, Value] = field(default_factory=dict)  # condition keys (names not case-sensitive)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # which statement allowed or denied it, or why nothing did


def evaluate(policy: Mapping[str, Any], request: Request) -> Decision:
    """The decision for ``request`` under the identity policy ``policy`` alone."""
    context = {k.lower(): v for k, v in request.context.items()}
    allows = []
    for i, st in enumerate(_statements(policy)):
        if not _applies(st, request, context):
            continue
        sid = st.get("Sid") or f"#{i}"
        if st["Effect"] == "Deny":
            return Decision(False, f"explicitly denied by statement {sid}")
        allows.append(sid)
    if allows:
        return Decision(True, f"allowed by statement {allows[0]}")
    return Decision(False, "no statement allows it (implicit deny)")


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    st = policy["Statement"]
    return [st] if isinstance(st, Mapping) else list(st)


def _listed(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _applies(st: Mapping[str, Any], request: Request, context: Mapping[str, Value]) -> bool:
    if st.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f"statement {st.get('Sid')!r}: Effect must be Allow or Deny")
    if ("Action" in st) == ("NotAction" in st) or ("Resource" in st) == ("NotResource" in st):
        raise ValueError(f"statement {st.get('Sid')!r}: exactly one of Action/NotAction and of Resource/NotResource")
    if "Principal" in st or "NotPrincipal" in st:
        raise ValueError(f"statement {st.get('Sid')!r}: a Principal belongs in a resource-based policy")
    in_actions = any(_wildcard(p, request.action, ignore_case=True) for p in _listed(st.get("Action", st.get("NotAction"))))
    if in_actions != ("Action" in st):
        return False
    in_resources = any(arn_like(p, request.resource) for p in _listed(st.get("Resource", st.get("NotResource"))))
    if in_resources != ("Resource" in st):
        return False
    return all(_condition(op, keys, context) for op, keys in (st.get("Condition") or {}).items())


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    if "${" in pattern:
        raise ValueError(f"policy variables are not supported: {pattern!r}")
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def arn_like(pattern: str, arn: str) -> bool:
    """ArnLike / the Resource element: ``*`` alone matches anything; otherwise the six parts
    (arn, partition, service, region, account, resource) each match their own pattern."""
    if pattern == "*":
        return True
    want, got = pattern.split(":", 5), arn.split(":", 5)
    return len(want) == len(got) == 6 and all(_wildcard(w, g) for w, g in zip(want, got))


# The base operators: (request value, policy value) -> match. Negated ones are "not any match".
_POSITIVE = {
    "StringEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.lower() == p.lower(),
    "StringLike": lambda v, p: _wildcard(p, v),
    "ArnEquals": lambda v, p: arn_like(p, v),
    "ArnLike": lambda v, p: arn_like(p, v),
    "Bool": lambda v, p: v.lower() == str(p).lower(),
    "NumericEquals": lambda v, p: float(v) == float(p),
    "NumericLessThan": lambda v, p: float(v) < float(p),
    "NumericLessThanEquals": lambda v, p: float(v) <= float(p),
    "NumericGreaterThan": lambda v, p: float(v) > float(p),
    "NumericGreaterThanEquals": lambda v, p: float(v) >= float(p),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
            "NumericNotEquals": "NumericEquals"}


def _condition(operator: str, keys: Mapping[str, Any], context: Mapping[str, Value]) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise ValueError(f"unknown condition qualifier {qualifier!r}")
    if_exists = base.endswith("IfExists") and base != "IfExists"
    base = base.removesuffix("IfExists") if if_exists else base
    return all(_key_holds(qualifier, base, if_exists, key.lower(), [str(p) if isinstance(p, bool) else p for p in _listed(want)],
                          context) for key, want in keys.items())


def _key_holds(qualifier: str, base: str, if_exists: bool, key: str, want: Sequence[Any],
               context: Mapping[str, Value]) -> bool:
    if any("${" in str(w) for w in want):
        raise ValueError(f"policy variables are not supported: {key}: {list(want)}")
    present = key in context
    if base == "Null":
        if qualifier or if_exists:
            raise ValueError("Null takes neither a set qualifier nor IfExists")
        return any(str(w).lower() == ("false" if present else "true") for w in want)
    if base not in _POSITIVE and base not in _NEGATED:
        raise ValueError(f"condition operator {base!r} is not supported here")
    negated = base in _NEGATED

    def one(value: str) -> bool:
        hit = any(_POSITIVE[_NEGATED.get(base, base)](value, w if isinstance(w, str) else str(w)) for w in want)
        return not hit if negated else hit

    if not present:
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return if_exists or negated
    value = context[key]
    if qualifier:
        values = _listed(value)
        return all(one(v) for v in values) if qualifier == "ForAllValues" else any(one(v) for v in values)
    if isinstance(value, tuple):
        raise ValueError(f"{key} is multivalued: use ForAllValues or ForAnyValue")
    return one(value)
