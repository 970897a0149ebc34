"""A plan and a build state for tests that run steps one by one, without planning (which
resolves registries and AWS): the pool's own base AMI, the given images, a fixed fingerprint
and run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from bake.cancel import CancelToken
from bake.model.config import PoolConfig
from bake.model.images import ResolvedImage
from bake.plan import PoolPlan
from bake.progress import NullReporter
from bake.steps.base import BuildState

RUN_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)
RUN_ID = "20260101T000000Z-abcdef"


def plan_for(pool: PoolConfig, images: Iterable[ResolvedImage] = (), **kw: Any) -> PoolPlan:
    return PoolPlan(pool, "us-east-1", pool.base_ami, tuple(images), "sha256:f", "bake", "a test", **kw)


def state_for(plan: PoolPlan, ec2: Any = None, **kw: Any) -> BuildState:
    kw = {"run_id": RUN_ID, "started_at": RUN_AT, "reporter": NullReporter(), "cancel": CancelToken(), **kw}
    return BuildState(plan=plan, ec2=ec2, **kw)
