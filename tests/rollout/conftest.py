"""Fixtures for the rollout side: a moto server of its own, throw-away project folders.

Terraform runs for real, with providers from the local mirror (terraform/cli.tfrc) and AWS
pointed at the moto server by AWS_ENDPOINT_URL only; the synthesized stack has no test settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bake_sandbox.private_moto import private_moto_server
from support.stacks import synthesize
from support.terraform import Moto, Project


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        yield Moto(url=url, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(dir=tmp_path)




@pytest.fixture(scope="session")
def synth() -> dict[str, str]:
    """The synthesized stacks of support.stacks, built once for the session."""
    return synthesize()
