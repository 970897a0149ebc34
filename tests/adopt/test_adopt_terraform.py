"""Adoption end to end in the sandbox: a pool made the old way (a launch configuration with user
data, an ASG with tags in two subnets), ``python -m bake adopt``, a real bake from the adopted
AMI, ``python main.py``, real terraform init/plan/apply against the sandbox's moto.

One project, two adopted groups: ``tmpl`` (the stack manages a new launch template) and
``legacy`` (``--launch configuration``: a new launch configuration). The first plan must import
each group, create its new template/configuration, switch the group in place, and change
nothing else about it.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from support.cli import run_bake
from legacy_groups import PRE_EXISTING, USER_DATA, describe_group, make_legacy_group
from support.terraform import Project, changes, needs_terraform

from bake.model.lock import LockFile

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.terraform,
    needs_terraform(),
]

# Provider-side flags that are not AWS settings: the importer leaves them null, so the first plan
# sets them to their schema defaults. No API call follows from them.
PROVIDER_ONLY = {"force_delete": False, "force_delete_warm_pool": False,
                 "ignore_failed_scaling_activities": False, "wait_for_capacity_timeout": "10m"}
LAUNCH_SOURCE = {"launch_configuration", "launch_template"}


def _fill(cfg: Path, pool: str, sandbox, images: list[str]) -> None:  # noqa: ANN001
    """What the user does after adopting: fill in the images (and here, the sandbox's SSH)."""
    doc = tomlkit.parse(cfg.read_text())
    t = doc["pools"][pool]
    t["images"] = images
    t["ssh_host"] = sandbox.info.ssh_host
    t["ssh_user"] = sandbox.info.ssh_user
    t["ssh_timeout"] = 60
    cfg.write_text(tomlkit.dumps(doc))


def _launch_data(sandbox, name: str) -> tuple[str, bytes, dict]:  # noqa: ANN001
    """(AMI, decoded user data, group) the group launches now: through its template version or LC."""
    group = describe_group(sandbox, name)
    if "LaunchTemplate" in group:
        spec = group["LaunchTemplate"]
        v = sandbox.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])["LaunchTemplateVersions"][0]
        data = v["LaunchTemplateData"]
        return data["ImageId"], base64.b64decode(data["UserData"]), group
    lc = sandbox.client("autoscaling").describe_launch_configurations(
        LaunchConfigurationNames=[group["LaunchConfigurationName"]])["LaunchConfigurations"][0]
    return lc["ImageId"], base64.b64decode(lc["UserData"]), group


def _norm(v: Any) -> Any:
    """A plan value without empty members: the JSON plan writes an unset nested attribute as null
    before an import and as "" or [] after it, which terraform itself shows as no change."""
    if isinstance(v, dict):
        v = {k: _norm(x) for k, x in v.items()}
        return {k: x for k, x in v.items() if x not in (None, "", [], {})}
    if isinstance(v, list):
        return [_norm(x) for x in v if _norm(x) not in (None, "", [], {})]
    return v


def _changed(c: dict) -> set[str]:
    b, a, u = c["before"] or {}, c["after"] or {}, c["after_unknown"] or {}
    return {k for k in set(b) | set(a) if _norm(b.get(k)) != _norm(a.get(k)) or _unknown(u.get(k))}


def _unknown(v: Any) -> bool:
    """Whether an after_unknown value marks anything as known only after apply."""
    if isinstance(v, dict):
        return any(_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(_unknown(x) for x in v)
    return v is True


def _group_settings(group: dict) -> dict:
    keep = ("MinSize", "MaxSize", "DesiredCapacity", "DefaultCooldown", "HealthCheckType", "HealthCheckGracePeriod",
            "TerminationPolicies", "NewInstancesProtectedFromScaleIn", "CapacityRebalance")
    return {**{k: group.get(k) for k in keep},
            "subnets": sorted(group["VPCZoneIdentifier"].split(",")),
            "tags": sorted((t["Key"], t["Value"], t["PropagateAtLaunch"]) for t in group["Tags"])}


@pytest.fixture(scope="module")
def flow(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: ANN001
    suffix = f"{int(time.time() * 1000) % 10**8}"
    groups = {"tmpl": make_legacy_group(sandbox, f"adopt-tmpl-{suffix}"),
              "legacy": make_legacy_group(sandbox, f"adopt-legacy-{suffix}")}
    before = {pool: _group_settings(describe_group(sandbox, g["name"])) for pool, g in groups.items()}
    p = Project(dir=tmp_path_factory.mktemp("adopt"), env=dict(sandbox.env()))
    p.config.write_text(PRE_EXISTING)
    out: dict[str, Any] = {"project": p, "groups": groups, "before": before}
    out["adopt_runs"] = {
        "tmpl": run_bake("adopt", groups["tmpl"]["name"], "--pool", "tmpl", "--config", str(p.config)),
        "legacy": run_bake("adopt", groups["legacy"]["name"], "--pool", "legacy", "--launch", "configuration",
                           "--config", str(p.config)),
    }
    for r in out["adopt_runs"].values():
        assert r.returncode == 0, r.stderr
    out["adopted_text"] = p.config.read_text()

    # A freshly pushed image: the fingerprint is new even against a long-lived sandbox, so this is a real bake.
    fresh = f"{sandbox.info.registry}/env/adopt-{suffix}:v1"
    sandbox.push_image(f"env/adopt-{suffix}", "v1", size_mb=1)
    images = [sandbox.info.images[0], fresh]
    for pool in groups:
        _fill(p.config, pool, sandbox, images)
    out["build"] = run_bake("build", "--pool", "tmpl", "--pool", "legacy", "--config", str(p.config))
    assert out["build"].returncode == 0, out["build"].stderr[-3000:]
    lock = LockFile(p.lock).read()
    out["baked"] = {pool: lock.pools[pool].current for pool in groups}

    p.synth()
    out["synth"] = p.synthesized()
    p.init()
    out["plan"] = p.plan_json()
    p.apply_plan()
    out["after"] = {pool: _launch_data(sandbox, g["name"]) for pool, g in groups.items()}
    out["plan_after"] = p.plan_json()
    return out


def test_adopt_keeps_the_file_and_the_bake_starts_from_the_adopted_ami(sandbox, flow) -> None:  # noqa: ANN001
    assert flow["adopted_text"].startswith(PRE_EXISTING)
    for pool, entry in flow["baked"].items():
        assert entry is not None
        assert entry.base_ami == sandbox.info.base_ami, "the base AMI is the launch configuration's"
        assert entry.ami_id != sandbox.info.base_ami


def test_synth_declares_the_imports(flow) -> None:  # noqa: ANN001
    imports = {(i["to"], i["id"]) for i in flow["synth"]["import"]}
    assert imports == {(f"aws_autoscaling_group.{pool}", g["name"]) for pool, g in flow["groups"].items()}


def test_first_plan_imports_switches_and_changes_nothing_else(flow) -> None:  # noqa: ANN001
    ch = changes(flow["plan"])
    acts = {a: c["actions"] for a, c in ch.items()}
    assert acts == {
        "aws_launch_template.tmpl": ["create"],
        "aws_autoscaling_group.tmpl": ["update"],
        "aws_launch_configuration.legacy": ["create"],
        "aws_autoscaling_group.legacy": ["update"],
    }, "no destroy, no replacement, nothing else"
    for pool, g in flow["groups"].items():
        c = ch[f"aws_autoscaling_group.{pool}"]
        assert c["importing"]["id"] == g["name"]
        before, after = c["before"], c["after"]
        changed = _changed(c)
        assert changed - set(PROVIDER_ONLY) <= LAUNCH_SOURCE, changed
        for k in changed & set(PROVIDER_ONLY):
            assert before.get(k) is None and after[k] == PROVIDER_ONLY[k], k
        assert before["launch_configuration"] == g["launch_configuration"]
        for k in ("name", "min_size", "max_size", "vpc_zone_identifier", "tag", "health_check_type",
                  "health_check_grace_period", "default_cooldown", "termination_policies"):
            assert after[k] == before[k], k
        assert sorted(after["vpc_zone_identifier"]) == sorted(g["subnets"])
        assert {(t["key"], t["value"], t["propagate_at_launch"]) for t in after["tag"]} == {
            ("team", "ml", True), ("kubernetes.io/cluster/prod", "owned", True), ("cost-center", "42", False)}
    # template mode: the group moves from its launch configuration to the new template's latest version
    t = ch["aws_autoscaling_group.tmpl"]
    assert t["before"]["launch_template"] == [] and t["after"]["launch_configuration"] is None
    assert t["after_unknown"]["launch_template"][0] == {"id": True, "version": True}
    lt = ch["aws_launch_template.tmpl"]["after"]
    assert lt["image_id"] == flow["baked"]["tmpl"].ami_id
    assert base64.b64decode(lt["user_data"]) == USER_DATA
    assert lt["instance_type"] == "t3.large"
    assert [d["device_name"] for d in lt["block_device_mappings"]] == ["/dev/xvda", "/dev/xvdb"]
    # legacy mode: a new launch configuration, the group switched in place
    lg = ch["aws_autoscaling_group.legacy"]
    assert lg["after_unknown"]["launch_configuration"] is True
    lc = ch["aws_launch_configuration.legacy"]["after"]
    assert lc["image_id"] == flow["baked"]["legacy"].ami_id
    assert lc["instance_type"] == "t3.large"
    assert lc["security_groups"] == [flow["groups"]["legacy"]["security_group"]]


def test_after_apply_the_groups_launch_the_baked_ami_with_the_original_user_data(flow, sandbox) -> None:  # noqa: ANN001
    for pool, g in flow["groups"].items():
        ami, user_data, group = flow["after"][pool]
        assert ami == flow["baked"][pool].ami_id
        assert user_data == USER_DATA, "user data passes through byte for byte"
        assert _group_settings(group) == flow["before"][pool], "sizes, subnets, tags, health checks unchanged"
    tmpl = flow["after"]["tmpl"][2]
    assert tmpl["LaunchTemplate"]["LaunchTemplateName"].startswith("tmpl-")
    legacy = flow["after"]["legacy"][2]
    assert legacy["LaunchConfigurationName"].startswith("legacy-")
    assert legacy["LaunchConfigurationName"] != flow["groups"]["legacy"]["launch_configuration"]


def test_the_import_happens_once(flow) -> None:  # noqa: ANN001
    ch = changes(flow["plan_after"])
    assert not any("importing" in c for c in ch.values()), "in the state now: the import block is a no-op"
    assert not any(set(c["actions"]) & {"create", "delete"} for c in ch.values()), ch
    assert ch["aws_autoscaling_group.legacy"]["actions"] == ["no-op"]
    # moto quirks, not AWS's: it keeps LaunchConfigurationName after UpdateAutoScalingGroup(LaunchTemplate=...)
    # and reports a fresh template's "launch-template" tag specification back (a new version follows).
    # The template-mode group may show its launch source again; nothing else about it.
    assert _changed(ch["aws_autoscaling_group.tmpl"]) <= LAUNCH_SOURCE

