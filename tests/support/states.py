"""A plan and a build state for tests that run steps one by one, without planning (which
resolves registries and AWS): the pool's own base AMI, the given images, a fixed fingerprint
and run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

from bake.cancel import CancelToken
from bake.model.config import PoolConfig
from bake.model.images import ResolvedImage
from bake.plan import PoolPlan
from bake.progress import NullReporter
from bake.steps.base import BuildState, Run

RUN_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
RUN_ID = "20260101T000000Z-abcdef"
RUN_FIELDS = {f.name for f in fields(Run)}


def plan_for(pool: PoolConfig, images: Iterable[ResolvedImage] = (), **kw: Any) -> PoolPlan:
    return PoolPlan(pool, "us-east-1", pool.base_ami, tuple(images), "sha256:f", "bake", "a test", **kw)


def run_for(ec2: Any = None, **kw: Any) -> Run:
    """A run whose every region's EC2 client is ``ec2`` unless ``ec2_in`` says otherwise."""
    kw = {"id": RUN_ID, "started_at": RUN_AT, "reporter": NullReporter(), "cancel": CancelToken(),
          "ec2_in": lambda region: ec2, **kw}
    return Run(**kw)


def state_for(plan: PoolPlan, ec2: Any = None, **kw: Any) -> BuildState:
    """``kw`` names fields of the run (``id``, ``reporter``, ...) or of the state (``conn``, ...)."""
    run = {name: kw.pop(name) for name in [n for n in kw if n in RUN_FIELDS]}
    return BuildState(plan, run_for(ec2, **run), **kw)
