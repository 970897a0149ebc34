"""Shared fixtures: the local sandbox (a real moto, sshd, registries, containerd and dockerd).

``sandbox`` brings it up once per session (an already running sandbox is reused, and left
running) and points the session's environment at it. Under CI=true a sandbox that cannot start
FAILS the tests that need it: a missing binary or a daemon that will not start must never turn
into a green run of skipped tests. Elsewhere such tests skip with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.ci import unavailable
from support.parts import split
from support.sandbox_bakes import builder_files_containing, fresh_image, leftovers

PARTS = ("all", "sandbox", "rest")


def pytest_addoption(parser: pytest.Parser) -> None:
    # scripts/dev.sh runs the suite as two processes at once: the tests that use the one sandbox
    # of the machine, and the rest (unit tests, terraform against private moto servers), which
    # share nothing with them. Most of the sandbox's time is waiting, so the two overlap well.
    parser.addoption("--part", choices=PARTS, default="all",
                     help="all (default); sandbox: only the tests that use the sandbox; rest: the others")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = split(items, config.getoption("--part"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept



@pytest.fixture(scope="session")
def sandbox() -> Iterator[object]:
    from bake_sandbox import Sandbox

    if os.geteuid() != 0:
        unavailable("sandbox unavailable: needs root (it installs a CA, edits /etc/hosts and starts daemons)")
    sb = Sandbox()
    try:
        if not sb.is_up():
            sb.up()
    except Exception as e:  # noqa: BLE001 - any failure to start is reported as such
        unavailable(f"sandbox unavailable: {type(e).__name__}: {e}")
    saved = dict(os.environ)
    os.environ.update(sb.env())
    try:
        yield sb
        # What the session pushed leaves the disk with it: runs on one machine used to pile up
        # gigabytes of test images until a CI run hit ENOSPC. Inside ``try``, so a clean-up that
        # fails is a failed run, not a quiet leak.
        sb.discard_pushed()
        sb.collect_registry_garbage()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def ec2(sandbox):  # noqa: ANN001, ANN201
    """A boto3 EC2 client against the sandbox's moto server."""
    return sandbox.client("ec2")


@pytest.fixture
def in_process_ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An EC2 client against moto in this process (``mock_aws``, us-east-1): unit level only;
    the ``ec2`` fixture is the sandbox's moto server."""
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="us-east-1")


@pytest.fixture
def big_image(sandbox):  # noqa: ANN001, ANN201
    """``big_image(size_mb)`` pushes a fresh image (random content: no AMI has its fingerprint)
    and returns its reference; the test's end removes it from the registry and both runtimes.
    Large images would otherwise stay on the disk three times over until the session's end."""
    refs: list[str] = []

    def push(size_mb: float) -> str:
        refs.append(fresh_image(sandbox, size_mb, prefix="scratch"))
        return refs[-1]

    yield push
    sandbox.discard_pushed(refs)


@pytest.fixture
def clean_after(sandbox, ec2):  # noqa: ANN001, ANN201
    """Every end-to-end test ends with nothing running, no temporary group or key pair, and no
    registry credential on the builder."""
    yield
    assert leftovers(ec2) == {"instances": [], "security_groups": [], "key_pairs": []}
    user, password = sandbox.ecr_credentials()
    assert builder_files_containing(sandbox, password) == []
