"""Fixtures for the unit tests: in-process moto only (the sandbox's moto server is for the
other folders)."""

from __future__ import annotations

import pytest


@pytest.fixture
def in_process_ec2(monkeypatch):
    """An EC2 client against moto in this process (``mock_aws``), in us-east-1."""
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="us-east-1")
