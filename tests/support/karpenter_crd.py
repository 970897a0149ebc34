"""Validate an EC2NodeClass the way the Kubernetes API server would, from Karpenter's own CRD
(tests/data/karpenter, with its license and the commit it came from).

Two checks, as the API server makes them:
- the openAPIV3Schema, with ``jsonschema``. Unknown fields are refused (``additionalProperties:
  false`` on every object that lists its properties and does not preserve unknown fields):
  kubectl's default ``--validate=strict`` makes the server refuse them rather than drop them.
  ``metadata`` is the API server's own (not in the schema) and is not checked here.
- every ``x-kubernetes-validations`` CEL rule, evaluated with Google's CEL runtime
  (``cel-expr-python``) and its strings extension, which Kubernetes' CEL environment includes
  (``split``). Kubernetes' own ``find`` (its regex library) is in no CEL package of the
  registries: the rules that use it run with a stand-in, ``re.search``'s first match or "",
  which is that function's documented meaning; ``Rules.stand_in`` lists them, and a rule that
  still does not compile is counted in ``Rules.skipped`` (the tests require none).
A rule runs only where its value is present, as in Kubernetes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD = Path(__file__).resolve().parent.parent / "data" / "karpenter" / "karpenter.k8s.aws_ec2nodeclasses.yaml"
# The functions of Kubernetes' CEL libraries the registries' CEL runtime lacks, with a stand-in.
STAND_INS = {"find": "first match of the regular expression, or ''"}


@dataclass
class Rules:
    """The CRD's CEL rules by schema path, compiled."""

    compiled: dict[str, list[tuple[str, str, Any]]] = field(default_factory=dict)  # path: [(rule, message, program)]
    stand_in: list[str] = field(default_factory=list)  # rules that need a stand-in function
    skipped: list[str] = field(default_factory=list)  # rules that compile with nothing here

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.compiled.values())


@cache
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD.read_text(encoding="utf-8"))


def schema() -> dict[str, Any]:
    (version,) = [v for v in crd()["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


@cache
def strict_schema() -> dict[str, Any]:
    """The schema with unknown fields refused (the API server's strict field validation)."""
    def close(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    out = copy.deepcopy(schema())
    close(out)
    return out


def _find(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    return m.group(0) if m else ""


@cache
def _envs() -> tuple[Any, Any]:
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_strings

    self_type = {"self": cel.Type.DYN}
    base = cel.NewEnv(variables=self_type, extensions=[ext_strings.ExtStrings()])
    find = cel.FunctionDecl("find", [cel.Overload("string_find_string", cel.Type.STRING,
                                                  [cel.Type.STRING, cel.Type.STRING], is_member=True, impl=_find)])
    stood_in = cel.NewEnv(variables=self_type, extensions=[ext_strings.ExtStrings()], functions=[find])
    return base, stood_in


@cache
def rules() -> Rules:
    base, stood_in = _envs()
    out = Rules()

    def walk(node: dict[str, Any], path: str) -> None:
        for v in node.get("x-kubernetes-validations", []):
            rule = v["rule"]
            try:
                program = base.compile(rule)
            except Exception:  # noqa: BLE001 - cel-expr-python raises a plain exception for an undeclared function
                try:
                    program = stood_in.compile(rule)
                    out.stand_in.append(rule)
                except Exception:  # noqa: BLE001
                    out.skipped.append(rule)
                    continue
            out.compiled.setdefault(path, []).append((rule, v["message"], program))
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(schema(), "")
    return out


def _values(doc: Any, path: str) -> list[tuple[str, Any]]:
    """The values at a schema path ('.spec.amiSelectorTerms[].alias'), each with its own path."""
    found = [("", doc)]
    for part in re.findall(r"\.[^.\[{]+|\[\]|\{\}", path):
        nxt = []
        for where, value in found:
            if part == "[]" and isinstance(value, list):
                nxt += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
            elif part == "{}" and isinstance(value, dict):
                nxt += [(f"{where}.{k}", v) for k, v in value.items()]
            elif part.startswith(".") and isinstance(value, dict) and part[1:] in value:
                nxt.append((f"{where}{part}", value[part[1:]]))
        found = nxt
    return found


def cel_errors(doc: dict[str, Any]) -> list[str]:
    """Each CEL rule that fails (or does not evaluate to true) on ``doc``: 'PATH: message'."""
    errors = []
    for path, compiled in rules().compiled.items():
        for where, value in _values(doc, path):
            for rule, message, program in compiled:
                result = program.eval(data={"self": value})
                if result.value() is not True:
                    errors.append(f"{where or '.'}: {message} (rule {rule!r} gave {result.value()!r})")
    return errors


def schema_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(strict_schema())
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(doc)]
    group, kind = crd()["spec"]["group"], crd()["spec"]["names"]["kind"]
    if doc.get("apiVersion") != f"{group}/v1" or doc.get("kind") != kind:
        errors.append(f".: apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not {group}/v1 {kind}")
    return errors


def errors(doc: dict[str, Any]) -> list[str]:
    """Everything the API server would refuse in ``doc``: the schema's errors, then the CEL
    rules' (the API server, too, runs the rules only on a value the schema accepts)."""
    return schema_errors(doc) or cel_errors(doc)
