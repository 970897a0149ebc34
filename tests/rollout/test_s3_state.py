"""``[state] backend = "s3"`` from bake.toml through main.py, against the sandbox's moto S3 and
DynamoDB: terraform init and apply keep the state in the bucket, with state locking (S3's
lock file and the DynamoDB table); a held lock stops the next plan; the second plan is empty."""

from __future__ import annotations

import json
import uuid

import pytest

from support.terraform import Project, asg_image, bake_ami, changes, needs_terraform, record, steady

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, needs_terraform()]


@pytest.fixture(scope="module")
def s3_flow(sandbox, tmp_path_factory):
    s = uuid.uuid4().hex[:8]
    bucket, table, key, pool = f"tf-state-{s}", f"tf-locks-{s}", "nodepools/state.tfstate", f"s3state{s}"
    s3, ddb = sandbox.client("s3"), sandbox.client("dynamodb")
    s3.create_bucket(Bucket=bucket)
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}])
    p = Project(dir=tmp_path_factory.mktemp("s3state"), env=dict(sandbox.env()))
    p.write_config(f"""
        region = "us-east-1"
        [state]
        backend = "s3"
        bucket = "{bucket}"
        key = "{key}"
        dynamodb_table = "{table}"
        use_lockfile = true
        [pools.{pool}]
        base_ami = "ami-ekslinux"
        images = ["docker.io/library/nginx:1.27"]
        [pools.{pool}.launch_template]
        root_volume_size = 20
        [pools.{pool}.asg]
        min_size = 0
        max_size = 1
        availability_zones = ["us-east-1a"]
    """)
    ami = bake_ami(sandbox, f"{pool}-1")
    record(p.lock, pool, ami, "fp1", "2025-01-01T00:00:00Z")
    p.synth()
    p.init()
    out = {"project": p, "pool": pool, "ami": ami, "bucket": bucket, "key": key, "table": table,
           "first": changes(p.plan_json())}
    p.apply_plan()
    out["after_apply"] = asg_image(sandbox, pool)
    out["objects"] = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    out["state"] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    out["lock_items"] = [i["LockID"]["S"] for i in ddb.scan(TableName=table)["Items"]]
    # Another run holds the lock (its lock file in the bucket): the next plan must stop.
    held = {"ID": "11111111-2222-3333-4444-555555555555", "Operation": "OperationTypeApply",
            "Who": "someone@elsewhere", "Version": "1.11.4", "Created": "2026-11-30T00:00:00Z", "Path": f"{bucket}/{key}"}
    s3.put_object(Bucket=bucket, Key=f"{key}.tflock", Body=json.dumps(held).encode())
    out["blocked"] = p.tf("plan", "-input=false", "-no-color", "-lock-timeout=0s", check=False)
    s3.delete_object(Bucket=bucket, Key=f"{key}.tflock")
    # The second plan reads the state back from the bucket: nothing to create. moto echoes back
    # a "launch-template" tag specification the new template was not given (a moto quirk, also
    # met in tests/adopt), which this plan corrects; apply it, and the plan after must be empty.
    out["second"] = p.plan_json()
    p.apply_plan()
    out["third"] = p.plan_json()
    yield out
    p.tf("destroy", "-input=false", "-no-color", "-auto-approve", check=False)


def test_apply_keeps_the_state_in_the_bucket(s3_flow):
    pool = s3_flow["pool"]
    assert {c["actions"][0] for c in s3_flow["first"].values()} == {"create"}
    assert s3_flow["after_apply"] == s3_flow["ami"]
    assert s3_flow["objects"] == [s3_flow["key"]], "the state is there and no lock file was left"
    managed = {r["type"] + "." + r["name"] for r in s3_flow["state"]["resources"]}
    assert {f"aws_launch_template.{pool}", f"aws_autoscaling_group.{pool}"} <= managed
    # terraform recorded the state's checksum in the lock table: the table is in use
    assert s3_flow["lock_items"] == [f"{s3_flow['bucket']}/{s3_flow['key']}-md5"]


def test_a_held_lock_stops_the_plan(s3_flow):
    r = s3_flow["blocked"]
    assert r.returncode != 0
    assert "Error acquiring the state lock" in r.stderr and "11111111-2222-3333-4444-555555555555" in r.stderr


def test_the_state_round_trips_through_the_bucket(s3_flow):
    # The second plan read the state back: it names the stack's resources (steady refuses an
    # empty plan), and changes nothing but moto's echoed tag specification in place.
    steady(s3_flow["second"])
    second = {a: c for a, c in changes(s3_flow["second"]).items() if c["actions"] != ["no-op"]}
    assert not [a for a, c in second.items() if c["actions"] != ["update"]], "the state was not read back"
    lt = f"aws_launch_template.{s3_flow['pool']}"
    if lt in second:  # moto's echoed tag specification, nothing else
        kinds = [t["resource_type"] for t in second[lt]["before"]["tag_specifications"]]
        assert "launch-template" in kinds
    assert steady(s3_flow["third"]) == {}
