"""A moto server (moto_server_url, moto_server_aws) for the lifecycle tests (prune, sweep), reset before every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from bake_sandbox.private_moto import private_moto_server
import requests




@pytest.fixture(scope="session")
def moto_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def moto_server_aws(moto_server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimpleNamespace:
    requests.post(f"{moto_server_url}/moto-api/reset", timeout=10).raise_for_status()
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return SimpleNamespace(
        url=moto_server_url,
        ec2=boto3.client("ec2", region_name="us-east-1"),
        autoscaling=boto3.client("autoscaling", region_name="us-east-1"),
    )
