"""The one strict base class of bake.toml's models, and the one way their errors read.

Every table of ``bake.toml`` (the AMI side's and the rollout side's alike) is a :class:`Strict`
model, so an unknown key, a wrong type or a bad value fails the same way; :func:`config_error`
turns pydantic's error into ``FILE: pools.NAME.TABLE.KEY: what is wrong`` with the nearest
spelling of an unknown key, taken from the model itself.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from bake.errors import ConfigError


class Strict(BaseModel):
    """A table of bake.toml: no unknown keys, no coercion (``"4"`` is not 4), immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def suggest(word: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def check_keys(path: Path, where: str, table: Mapping[str, Any], allowed: Collection[str]) -> None:
    for key in table:
        if key not in allowed:
            raise fail(path, where, f"unknown key {key!r}{suggest(key, allowed)}")


def config_error(path: Path, where: str, e: ValidationError, model: type[BaseModel],
                 origin: Mapping[str, str] | None = None) -> ConfigError:
    """One of ``e``'s errors as a ConfigError naming the file, the table and the key: an unknown
    key first (a misspelt required key is better reported as the typo than as missing).

    ``where`` is the table ``model`` was validated from (``pools.cpu``, or ``""`` for the top);
    ``origin`` maps a top key to the table it really came from (a value inherited from
    ``[defaults]`` is reported there, where the user has to fix it).
    """
    errors = e.errors()
    err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = [str(p) for p in err["loc"]]
    table = (origin or {}).get(loc[0], where) if loc else where
    kind = err["type"]
    if kind in ("missing", "extra_forbidden"):
        parent, key = loc[:-1], loc[-1]
        at = ".".join(p for p in [table, *parent] if p)
        if kind == "missing":
            return fail(path, at, f"missing required key {key!r}")
        return fail(path, at, f"unknown key {key!r}{suggest(key, _fields_at(model, err['loc'][:-1]))}")
    detail = err["msg"].removeprefix("Value error, ")
    if kind.endswith("_type") or kind == "literal_error":
        detail = f"{detail} (got {err.get('input')!r})"
    return fail(path, ".".join(p for p in [table, *loc] if p), detail)


def _fields_at(model: type[BaseModel], loc: Iterable[int | str]) -> list[str]:
    """The keys the table at ``loc`` (inside ``model``) may hold: for the near spelling."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int) or part not in current.model_fields:
            continue  # a list index or a dict key: the model found so far holds for it
        current = _model_in(current.model_fields[part].annotation)
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]``, ``dict[str, X]``, ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list, dict, tuple) or get_args(annotation):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
