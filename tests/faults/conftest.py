"""The fault matrix's fixtures: a fault-injecting proxy in front of moto, bakes started through
it (faultkit.BakeRun), a config with one fresh pool. The helpers tests import are in faultkit.py
(a unique module name: ``from conftest import`` finds whichever conftest was loaded last).

Every bake here runs with its own freshly pushed image, so its fingerprint is new and it
really launches (an earlier AMI with the same fingerprint would be reused instead).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faultkit import LOCK_BEFORE, BakeRun, Baseline
# Older tests wrote `from conftest import ...`: keep those names here too.
from faultkit import assert_nothing_left, closed_port, ssh_fingerprint, step_started  # noqa: F401
from faultproxy import FaultProxy
from support.sandbox_bakes import fresh_image, write_config


@pytest.fixture(scope="session")
def _proxy(sandbox) -> Iterator[FaultProxy]:
    p = FaultProxy(sandbox.info.moto_endpoint).start()
    yield p
    p.stop()


@pytest.fixture
def proxy(_proxy) -> Iterator[FaultProxy]:
    _proxy.clear()
    yield _proxy
    _proxy.clear()


@pytest.fixture
def bake(sandbox, proxy, tmp_path) -> Iterator[Callable[..., BakeRun]]:
    """Start a bake with the sandbox's environment, boto3 going through the fault proxy."""
    runs: list[BakeRun] = []
    baseline: list[Baseline] = []  # taken once, before the test's first run

    def start(*args: str, timeout: float = 120, env: dict | None = None) -> BakeRun:
        full = {**os.environ, **sandbox.env(), "AWS_ENDPOINT_URL": proxy.url, **(env or {})}
        if not baseline:
            baseline.append(Baseline(proxy, full))
        run = BakeRun(list(args), full, timeout, proxy, baseline[0])
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()


@pytest.fixture
def pool_config(sandbox, tmp_path) -> Callable[..., Path]:
    """bake.toml with one pool ``cpu`` baking a fresh image, beside a lock file with content."""

    def make(images: list[str] | None = None, name: str = "bake.toml", **extra) -> Path:
        imgs = images if images is not None else [fresh_image(sandbox)]
        cfg = write_config(tmp_path / name, sandbox, {"cpu": {"images": imgs, **extra}})
        lock = tmp_path / "amis.lock.json"
        if not lock.exists():
            lock.write_text(LOCK_BEFORE)
        return cfg

    return make


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "faults: the fault matrix (tests/faults), against the sandbox")
    config.addinivalue_line("markers", "slow: takes more than ~10 s (large images, retries with backoff)")
