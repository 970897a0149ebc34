"""[pools.NAME.distribute] against the sandbox: copies in two more regions (one encrypted),
sharing with an account, an organization and an OU, the lock's copies; a pool whose regions
grew only copies; an interrupt or a refused copy leaves nothing in any region.

moto serves every region at one endpoint and copies AMIs between them, but accepts encryption
without modelling it: what bake sent is read from the fault proxy's log (which records the
region each call was signed for) as well as what moto shows.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from faultkit import LOCK_BEFORE, assert_nothing_left, step_started

from bake import tags

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(240)]

SOURCE = "us-east-1"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ACCOUNT = "111122223333"
ORG = "arn:aws:organizations::123456789012:organization/o-abcde12345"
OU = "arn:aws:organizations::123456789012:ou/o-abcde12345/ou-ab12-cdef3456"


def distribute(cfg, regions: list[str]) -> None:
    cfg.write_text(cfg.read_text() + "\n[pools.cpu.distribute]\n" + "\n".join([
        f"regions = {json.dumps(regions)}",
        f'kms_key_ids = {{ eu-west-1 = "{KEY}" }}',
        f'accounts = ["{ACCOUNT}"]',
        f'organizations = ["{ORG}"]',
        f'organizational_units = ["{OU}"]',
    ]) + "\n")


def current(cfg) -> dict:
    return json.loads((cfg.parent / "amis.lock.json").read_text())["pools"]["cpu"]


def tag_specifications(params: dict[str, str]) -> dict[str, dict[str, str]]:
    """A query request's TagSpecification.N.{ResourceType,Tag.M.Key,Tag.M.Value} as {type: tags}."""
    out: dict[str, dict[str, str]] = {}
    n = 1
    while f"TagSpecification.{n}.ResourceType" in params:
        spec, m = out.setdefault(params[f"TagSpecification.{n}.ResourceType"], {}), 1
        while f"TagSpecification.{n}.Tag.{m}.Key" in params:
            spec[params[f"TagSpecification.{n}.Tag.{m}.Key"]] = params[f"TagSpecification.{n}.Tag.{m}.Value"]
            m += 1
        n += 1
    return out


def amis_of_run_in(sandbox, region: str, run_id: str) -> list[dict]:
    ec2 = sandbox.client("ec2", region)
    return ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}])["Images"]


def test_a_bake_copies_to_two_regions_shares_and_records_the_copies(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config()
    distribute(cfg, ["eu-west-1", "us-west-2"])
    run = bake("--config", str(cfg))
    assert run.finish() == 0, run.stderr
    entry = current(cfg)["current"]
    ami = entry["ami_id"]
    assert set(entry["copies"]) == {"eu-west-1", "us-west-2"}
    assert ami not in entry["copies"].values()

    # What bake asked for: one CopyImage per region, signed for that region, from the original,
    # with a ClientToken of its own, encrypted with the region's key only where one is named.
    copies = {c.region: c.params for c in proxy.calls_to("CopyImage")}
    assert set(copies) == {"eu-west-1", "us-west-2"}
    for region, params in copies.items():
        assert params["SourceImageId"] == ami and params["SourceRegion"] == SOURCE
        assert len(params["ClientToken"]) == 64
    assert copies["eu-west-1"]["ClientToken"] != copies["us-west-2"]["ClientToken"]
    assert copies["eu-west-1"]["Encrypted"] == "true" and copies["eu-west-1"]["KmsKeyId"] == KEY
    assert "Encrypted" not in copies["us-west-2"] and "KmsKeyId" not in copies["us-west-2"]
    # Each copy and its snapshots are tagged by CopyImage itself: no CreateTags names a copy.
    for region, params in copies.items():
        specs = tag_specifications(params)
        assert set(specs) == {"image", "snapshot"} and specs["image"] == specs["snapshot"], region
        assert specs["image"][tags.KEY_TOOL] == tags.TOOL and specs["image"][tags.KEY_RUN] == run.run_id
    tagged = {r for c in proxy.calls_to("CreateTags") for k, r in c.params.items() if k.startswith("ResourceId.")}
    assert not tagged & set(entry["copies"].values())

    source_tags = tags.from_aws(ec2.describe_images(ImageIds=[ami])["Images"][0]["Tags"])
    for region, copy in entry["copies"].items():
        rec = sandbox.client("ec2", region)
        image = rec.describe_images(ImageIds=[copy])["Images"][0]
        assert image["State"] == "available"
        got = tags.from_aws(image["Tags"])
        # Tagged like the original (pool, fingerprint, digests), plus where it came from.
        assert got[tags.KEY_POOL] == "cpu" and got[tags.KEY_FINGERPRINT] == entry["fingerprint"]
        assert got[tags.KEY_SOURCE_AMI] == ami and got[tags.KEY_SOURCE_REGION] == SOURCE
        assert got[tags.KEY_RUN] == run.run_id
        snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        snap_tags = rec.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0].get("Tags")
        assert tags.from_aws(snap_tags) == got, region  # the copy's snapshot: the copy's tags
        assert got[tags.KEY_CACHE_BYTES] == source_tags[tags.KEY_CACHE_BYTES] == str(entry["cache_bytes"])
        assert {k: v for k, v in got.items() if k.startswith(tags.KEY_IMAGE_PREFIX)} == \
            {k: v for k, v in source_tags.items() if k.startswith(tags.KEY_IMAGE_PREFIX)}
    # Launch permission on the original and every copy; the account may create volumes from
    # their snapshots.
    for region, image_id in [(SOURCE, ami), *entry["copies"].items()]:
        rec = sandbox.client("ec2", region)
        perms = rec.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
        assert {"UserId": ACCOUNT} in perms and {"OrganizationArn": ORG} in perms \
            and {"OrganizationalUnitArn": OU} in perms, (region, perms)
    shared = proxy.calls_to("ModifySnapshotAttribute")
    assert shared and {c.region for c in shared} == {SOURCE, "eu-west-1", "us-west-2"}
    for call in shared:
        snap = call.params["SnapshotId"]
        rec = sandbox.client("ec2", call.region)
        perms = rec.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
        assert {"UserId": ACCOUNT} in perms["CreateVolumePermissions"], (call.region, perms)

    # The regions grew: the same AMI, one more copy, nothing baked, the history untouched.
    before = current(cfg)
    proxy.clear()
    distribute_again = cfg.read_text().replace('regions = ["eu-west-1", "us-west-2"]',
                                               'regions = ["eu-west-1", "us-west-2", "ap-southeast-2"]')
    cfg.write_text(distribute_again)
    run2 = bake("--config", str(cfg))
    assert run2.finish() == 0, run2.stderr
    assert not proxy.calls_to("RunInstances") and not proxy.calls_to("CreateImage")
    assert [c.region for c in proxy.calls_to("CopyImage")] == ["ap-southeast-2"]
    after = current(cfg)
    assert after["current"]["ami_id"] == ami and after["history"] == before["history"]
    assert after["current"]["copies"] == {**entry["copies"], "ap-southeast-2": after["current"]["copies"]["ap-southeast-2"]}
    # A copy-only run keeps the AMI's first-read facts (docs/first-start.md) in the lock.
    first_read = ("compressed_bytes", "cache_bytes", "snapshot_ids", "snapshot_gib", "prewarm")
    assert entry["cache_bytes"] > 0 and entry["snapshot_ids"] and entry["snapshot_gib"]
    assert {k: after["current"][k] for k in first_read} == {k: entry[k] for k in first_read}
    done = next(e for e in run2.events if e.get("kind") == "pool.done")
    assert done["message"].startswith(f"distributed {ami}")


def test_an_interrupt_while_copying_leaves_nothing_in_any_region(sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config()
    distribute(cfg, ["eu-west-1", "us-west-2"])
    held = proxy.add("CopyImage", delay=2.5, times=1)  # the first copy is in flight when the signal comes
    run = bake("--config", str(cfg))
    run.wait_event(step_started("copies"), timeout=90)
    deadline = time.monotonic() + 30
    while not held.hits:  # the proxy is holding the first CopyImage now
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
        time.sleep(0.05)
    run.send(signal.SIGINT)
    assert run.finish() == 130, run.stderr
    assert "interrupted (SIGINT); cleanup done" in run.stderr
    started = proxy.calls_to("CopyImage")
    assert [c.region for c in started] == ["eu-west-1"], "the second copy started after the signal"
    assert any(c.region == "eu-west-1" for c in proxy.calls_to("DeregisterImage")), "the copy was not removed"
    for region in ("eu-west-1", "us-west-2"):
        assert amis_of_run_in(sandbox, region, run.run_id) == [], region
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_a_refused_copy_fails_the_pool_naming_the_region_and_removes_what_the_run_made(
        sandbox, ec2, bake, proxy, pool_config):
    cfg = pool_config()
    distribute(cfg, ["us-west-2", "eu-west-1"])
    proxy.add("CopyImage", times=1)  # us-west-2's copy goes through
    proxy.add("CopyImage", status=400, code="KMSKeyNotAccessibleFault", times=1)  # eu-west-1's key is refused
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    fail = next(e for e in run.events if e.get("kind") == "pool.fail")
    assert "to eu-west-1 failed" in fail["message"] and "KMSKeyNotAccessibleFault" in fail["message"], fail
    for region in ("eu-west-1", "us-west-2"):
        assert amis_of_run_in(sandbox, region, run.run_id) == [], region
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")
    assert (cfg.parent / "amis.lock.json").read_text() == LOCK_BEFORE
