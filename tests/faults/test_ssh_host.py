"""``ssh_host = "public_ip"`` / ``"private_ip"``: the bake dials the builder's address of that
kind (unreachable here: the failure names it), and an instance without one fails clearly with
nothing left behind. The proxy sets the public address in moto's DescribeInstances answers to
198.51.100.7 (a documentation address): moto drops an instance's public address when it
terminates, so the test could not read the one the bake dialled afterwards."""

from __future__ import annotations

import re

import pytest

from bake import tags
from faultkit import assert_nothing_left

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(180)]

KEY = {"public_ip": "PublicIpAddress", "private_ip": "PrivateIpAddress"}  # boto3's names
XML = {"public_ip": "ipAddress", "private_ip": "privateIpAddress"}  # the EC2 query API's names


def builder(ec2, run_id: str) -> dict:
    res = ec2.describe_instances(Filters=[{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}])
    return next(i for r in res["Reservations"] for i in r["Instances"])


PUBLIC = "198.51.100.7"


def with_public_address(body: bytes) -> bytes:
    body = re.sub(rb"<ipAddress>[^<]*</ipAddress>", b"", body)  # one per instance, or boto3 reads a list
    return re.sub(rb"(<instanceId>i-\w+</instanceId>)", rb"\1<ipAddress>" + PUBLIC.encode() + rb"</ipAddress>", body)


@pytest.mark.parametrize("mode", ["public_ip", "private_ip"])
def test_the_builders_address_of_that_kind_is_dialled(sandbox, ec2, bake, proxy, pool_config, mode):
    proxy.add("DescribeInstances", rewrite=with_public_address)
    cfg = pool_config(ssh_host=mode, ssh_timeout=3)
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    address = PUBLIC if mode == "public_ip" else builder(ec2, run.run_id)["PrivateIpAddress"]
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")["message"]
    assert f"cannot reach ec2-user@{address}:22 over SSH" in fail, fail
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


@pytest.mark.parametrize("mode", ["public_ip", "private_ip"])
def test_a_builder_without_that_address_fails_clearly(sandbox, ec2, bake, proxy, pool_config, mode):
    tag = XML[mode]
    proxy.add("DescribeInstances", rewrite=lambda body: re.sub(rf"<{tag}>[^<]*</{tag}>".encode(), b"", body))
    cfg = pool_config(ssh_host=mode, ssh_timeout=3)
    run = bake("--config", str(cfg))
    assert run.finish() in (1, 2), run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")["message"]
    assert re.search(rf"builder i-\w+ has no {KEY[mode]}", fail), fail
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")
