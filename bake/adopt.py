"""``bake adopt``: bring a live Auto Scaling group under the tool.

Reads the group and its active launch configuration or launch template version with boto3 (the
manual procedure's step 1: "the AMI that's currently used in the active launch configuration"),
and writes a pool into ``bake.toml`` that records them, format-preserving (tomlkit): the file's
other content and comments stay as they were. The rollout side never calls AWS: everything the
stack needs to import the group and reproduce its settings exactly is in that pool.

What it writes, for a group ``ng-1`` adopted as pool ``ng-1``::

    [pools.ng-1]
    base_ami = "ami-0abc"      # the AMI the group ran (not asg:ng-1: after the rollout that is ours)
    images = []                # fill in (or pass --image REF): the config is invalid until then
    instance_type = "m5.xlarge"
    launch = "template"
    [pools.ng-1.launch_template]   # the source's instance settings
    [pools.ng-1.asg]               # the group's own settings, exactly (name, sizes, subnets, tags, ...)
    [pools.ng-1.adopt]             # asg_name, source, launch configuration / template id+version, adopted_at

User data goes to ``userdata/POOL.txt`` beside the config, byte for byte (decoded from base64),
referenced by ``launch_template.user_data_file``.

Nothing is written when anything fails: every check and the whole new text come first, then the
user data file and an atomic replace of the config.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from bake import aws
from bake.aws import images
from bake.aws.asg import LaunchSource, LaunchSourceError, launch_source
from bake.errors import ConfigError, UsageError
from bake.model.config import POOL_NAME, parse_config
from bake.model.times import iso_utc, utc_now
from bake.model.workspace import resolve_region

USER_DATA_DIR = "userdata"
# Launch template data keys this tool copies; any other key the source sets is reported, not copied.
_LT_COPIED = {
    "ImageId", "InstanceType", "SecurityGroupIds", "SecurityGroups", "IamInstanceProfile", "KeyName",
    "UserData", "BlockDeviceMappings", "MetadataOptions", "Monitoring",
}


class AdoptError(UsageError):
    """The group cannot be adopted as asked; nothing was written (exit 2)."""


@dataclass
class Adoption:
    """What ``adopt`` wrote."""

    pool: str
    asg_name: str
    config_path: Path
    base_ami: str
    source: str  # "launch configuration NAME" / "launch template lt-… version N"
    launch: str
    user_data_path: Path | None
    images_needed: bool
    notes: list[str] = field(default_factory=list)  # source settings not copied, and why


@dataclass
class _Source:
    kind: str  # "launch_configuration" | "launch_template"
    label: str
    adopt: dict[str, Any]
    ami: str
    instance_type: str
    security_groups: list[str]
    iam_instance_profile: str | None
    key_name: str | None
    user_data: bytes | None
    block_devices: list[dict[str, Any]]
    metadata: dict[str, Any]
    monitoring: bool | None
    root_device: str | None  # the source AMI's root device name
    notes: list[str]


def default_pool_name(asg_name: str) -> str | None:
    name = re.sub(r"[^a-z0-9_-]+", "-", asg_name.lower()).strip("-_")[:63]
    return name if POOL_NAME.match(name) else None


def adopt(
    config_path: str | Path,
    asg_name: str,
    *,
    pool: str | None = None,
    launch: str = "template",
    images: list[str] | None = None,
    autoscaling: Any = None,
    ec2: Any = None,
    now: dt.datetime | None = None,
) -> Adoption:
    """Record the live group ``asg_name`` as a pool of the config at ``config_path``.

    Raises AdoptError / ConfigError (exit 2) with the config untouched when the group does not
    exist, cannot be represented (a mixed-instances policy, a warm pool), is already adopted, or
    the pool name is taken.
    """
    path = Path(config_path)
    original, doc, raw = _read(path)
    pool = pool or default_pool_name(asg_name)
    if pool is None:
        raise AdoptError(f"{asg_name!r} is not a valid pool name: pass --pool NAME "
                         "(lower-case letters, digits, '-' and '_')")
    if not POOL_NAME.match(pool):
        raise AdoptError(f"--pool {pool!r}: pool names are lower-case letters, digits, '-' and '_' (at most 63)")
    _check_free(path, raw, pool, asg_name)

    if autoscaling is None or ec2 is None:
        configured = raw.get("region") if isinstance(raw.get("region"), str) else None
        sess = aws.session(configured)
        region = resolve_region(None, configured, lambda: aws.chain_region(sess), path)
        autoscaling = autoscaling or aws.client(sess, "autoscaling", region)
        ec2 = ec2 or aws.client(sess, "ec2", region)
    group = _describe_group(autoscaling, asg_name)
    source = _read_source(group, autoscaling, ec2)

    now = now or utc_now()
    user_data_rel = f"{USER_DATA_DIR}/{pool}.txt" if source.user_data is not None else None
    table = _pool_table(pool, group, source, launch, images or [], user_data_rel, now)
    _validate(path, raw, pool, table, bool(images))

    pools = doc.get("pools")
    if pools is None:
        pools = tomlkit.table(is_super_table=True)
        doc.add("pools", pools)
    pools.add(pool, table)
    text = tomlkit.dumps(doc)

    # Only now write: the user data first (removed again if the config cannot be written).
    ud_path = None
    created = False
    if user_data_rel is not None:
        assert source.user_data is not None
        ud_path = path.parent / user_data_rel
        if ud_path.exists() and ud_path.read_bytes() != source.user_data:
            raise AdoptError(f"{ud_path} exists with other content: move it away, or pass --pool with another name")
        if not ud_path.exists():
            ud_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(ud_path, source.user_data)
            created = True
    try:
        if path.exists() and path.read_bytes() != original:
            raise AdoptError(f"{path} changed while adopting; run again")
        _atomic_write(path, text.encode("utf-8"))
    except BaseException:
        if created and ud_path is not None:
            ud_path.unlink(missing_ok=True)
        raise
    return Adoption(pool=pool, asg_name=asg_name, config_path=path, base_ami=source.ami, source=source.label,
                    launch=launch, user_data_path=ud_path, images_needed=not images, notes=source.notes)


# -- the config file ------------------------------------------------------------------------------
def _read(path: Path) -> tuple[bytes | None, tomlkit.TOMLDocument, dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        doc = tomlkit.document()
        return None, doc, {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
        return data, tomlkit.parse(text), tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except (tomllib.TOMLDecodeError, tomlkit.exceptions.TOMLKitError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _check_free(path: Path, raw: dict[str, Any], pool: str, asg_name: str) -> None:
    pools = raw.get("pools") or {}
    if not isinstance(pools, dict):
        raise ConfigError(f"{path}: pools: must be a table")
    defaults = raw.get("defaults") if isinstance(raw.get("defaults"), dict) else {}
    for name, table in pools.items():
        if not isinstance(table, dict):
            continue
        merged = {**defaults, **table}
        adopted = (merged.get("adopt") or {}).get("asg_name") if isinstance(merged.get("adopt"), dict) else None
        asg = merged.get("asg") if isinstance(merged.get("asg"), dict) else None
        managed = None
        if asg is not None and merged.get("launch", "template") in ("template", "configuration"):
            managed = asg.get("name") or name
        if asg_name in (adopted, managed):
            how = "adopted by" if adopted == asg_name else "managed by"
            raise AdoptError(f"{path}: Auto Scaling group {asg_name!r} is already {how} pool {name!r}")
    if pool in pools:
        raise AdoptError(f"{path}: pool {pool!r} already exists: pass --pool with another name")


def _validate(path: Path, raw: dict[str, Any], pool: str, table: Table, has_images: bool) -> None:
    """The new pool must load as the stack and the build will load it (the images aside)."""
    plain = table.unwrap()
    if not has_images:
        plain["images"] = ["placeholder.invalid/adopt:validate"]
    defaults = raw.get("defaults") if isinstance(raw.get("defaults"), dict) else {}
    probe = {"pools": {pool: plain}, **({"defaults": defaults} if defaults else {})}
    try:
        config = parse_config(probe, path)
        config.rollout_of(pool)
    except ConfigError as e:
        raise AdoptError(f"cannot record this group as pool {pool!r}: {e}") from None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".adopt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- AWS ------------------------------------------------------------------------------------------
def _describe_group(autoscaling: Any, name: str) -> dict[str, Any]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise AdoptError(f"Auto Scaling group {name!r} does not exist (in this account and region)")
    group = groups[0]
    if group.get("MixedInstancesPolicy"):
        raise AdoptError(f"Auto Scaling group {name!r} has a mixed instances policy (several instance types or "
                         "spot allocation); this tool manages one launch template or configuration per group")
    try:
        warm = autoscaling.describe_warm_pool(AutoScalingGroupName=name).get("WarmPoolConfiguration")
    except Exception as e:  # noqa: BLE001 - an API without warm pools: nothing to check
        from bake.iam.refusal import message

        # A refusal is no answer: adopting a group whose warm pool we could not see would hide it.
        if aws.error_code(e) is None or message(e):
            raise
        warm = None
    if warm:
        raise AdoptError(f"Auto Scaling group {name!r} has a warm pool, which this tool does not manage; "
                         "remove it first")
    return group


def _read_source(group: dict[str, Any], autoscaling: Any, ec2: Any) -> _Source:
    try:
        source = launch_source(group, autoscaling, ec2)
    except LaunchSourceError as e:
        raise AdoptError(str(e)) from None
    if source.kind == "launch_configuration":
        return _from_launch_configuration(source, ec2)
    return _from_launch_template(source, ec2)


def _from_launch_configuration(source: LaunchSource, ec2: Any) -> _Source:
    lc = source.data
    notes: list[str] = []
    for key, label in (("SpotPrice", "spot_price"), ("PlacementTenancy", "placement_tenancy"),
                       ("ClassicLinkVPCId", "classic link"), ("KernelId", "kernel_id"), ("RamdiskId", "ramdisk_id")):
        if lc.get(key):
            notes.append(f"launch configuration {key} = {lc[key]!r} is not copied ({label})")
    if lc.get("EbsOptimized"):
        notes.append("EbsOptimized = true is not copied (current instance types are EBS-optimized by default)")
    if lc.get("AssociatePublicIpAddress"):
        notes.append("AssociatePublicIpAddress = true is not copied: the subnets' own setting applies")
    monitoring = (lc.get("InstanceMonitoring") or {}).get("Enabled")
    return _Source(
        kind=source.kind,
        label=source.label,
        adopt={"launch_configuration": lc["LaunchConfigurationName"]},
        ami=lc["ImageId"],
        instance_type=lc["InstanceType"],
        security_groups=_group_ids(list(lc.get("SecurityGroups") or []), ec2),
        iam_instance_profile=lc.get("IamInstanceProfile") or None,
        key_name=lc.get("KeyName") or None,
        user_data=_user_data(lc.get("UserData")),
        block_devices=list(lc.get("BlockDeviceMappings") or []),
        metadata=dict(lc.get("MetadataOptions") or {}),
        monitoring=monitoring,
        root_device=_root_device(lc["ImageId"], ec2),
        notes=notes,
    )


def _from_launch_template(source: LaunchSource, ec2: Any) -> _Source:
    version, data = source.data, source.settings
    if not source.ami:
        raise AdoptError(f"{source.label} names no AMI")
    if not data.get("InstanceType"):
        raise AdoptError(f"{source.label} names no instance type (instance requirements are not supported)")
    notes = [f"launch template data {k} is not copied" for k in sorted(set(data) - _LT_COPIED)]
    groups = list(data.get("SecurityGroupIds") or []) + list(data.get("SecurityGroups") or [])
    for eni in data.get("NetworkInterfaces") or []:
        groups += list(eni.get("Groups") or [])
    profile = data.get("IamInstanceProfile") or {}
    return _Source(
        kind=source.kind,
        label=source.label,
        adopt={"launch_template_id": version["LaunchTemplateId"],
               "launch_template_version": str(version["VersionNumber"])},
        ami=data["ImageId"],
        instance_type=data["InstanceType"],
        security_groups=_group_ids(list(dict.fromkeys(groups)), ec2),
        iam_instance_profile=profile.get("Arn") or profile.get("Name"),
        key_name=data.get("KeyName") or None,
        user_data=_user_data(data.get("UserData")),
        block_devices=list(data.get("BlockDeviceMappings") or []),
        metadata=dict(data.get("MetadataOptions") or {}),
        monitoring=(data.get("Monitoring") or {}).get("Enabled"),
        root_device=_root_device(data["ImageId"], ec2),
        notes=notes,
    )


def _user_data(b64: str | None) -> bytes | None:
    if not b64:
        return None
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        raise AdoptError("the source's user data is not base64") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise AdoptError("the source's user data is not UTF-8 text (gzip'd or binary user data is not supported)") from None
    return data


def _group_ids(groups: list[str], ec2: Any) -> list[str]:
    """Security group ids; names (EC2-Classic / default-VPC style) are looked up."""
    names = [g for g in groups if not g.startswith("sg-")]
    if not names:
        return groups
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": names}])["SecurityGroups"]
    by_name = {g["GroupName"]: g["GroupId"] for g in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise AdoptError(f"security group {missing[0]!r} of the source does not exist")
    return [g if g.startswith("sg-") else by_name[g] for g in groups]


def _root_device(ami: str, ec2: Any) -> str | None:
    try:
        image = images.describe(ec2, ami)
    except Exception as e:  # noqa: BLE001 - a refused look leaves the device unknown, as a gone AMI does
        if aws.error_code(e) is None:
            raise
        image = None
    return image.root_device if image else None


# -- the pool table -------------------------------------------------------------------------------
def _inline(d: dict[str, Any]) -> Any:
    t = tomlkit.inline_table()
    t.update(d)
    return t


def _pool_table(pool: str, group: dict[str, Any], src: _Source, launch: str, images: list[str],
                user_data_file: str | None, now: dt.datetime) -> Table:
    name = group["AutoScalingGroupName"]
    at = iso_utc(now)
    t = tomlkit.table()
    t.add(tomlkit.comment(f"Adopted from Auto Scaling group {name} ({src.label}) by `python -m bake adopt` on {at}."))
    base = tomlkit.item(src.ami)
    base.comment(f"the AMI of {src.label}; not asg:{name}, which after the rollout names this pool's own AMI")
    t.add("base_ami", base)
    imgs = tomlkit.array()
    imgs.extend(images)
    imgs_item = tomlkit.item(imgs)
    if not images:
        imgs_item.comment("FILL IN the images to bake (bake.toml is invalid until then)")
    t.add("images", imgs_item)
    builder = tomlkit.item(src.instance_type)
    builder.comment("the builder's type: the nodes' type (same architecture)")
    t.add("instance_type", builder)
    t.add("launch", launch)

    # -- launch template: the instances' settings, copied
    lt = tomlkit.table()
    lt.add("instance_type", src.instance_type)
    if src.security_groups:
        lt.add("security_group_ids", src.security_groups)
    if src.iam_instance_profile:
        lt.add("iam_instance_profile", src.iam_instance_profile)
    if src.key_name:
        lt.add("key_name", src.key_name)
    if user_data_file:
        ud = tomlkit.item(user_data_file)
        ud.comment("the source's user data, byte for byte")
        lt.add("user_data_file", ud)
    _block_devices(lt, src)
    hop = src.metadata.get("HttpPutResponseHopLimit")
    if hop:
        lt.add("http_put_response_hop_limit", int(hop))
    if src.metadata.get("HttpTokens") == "optional":
        src.notes.append("the source allowed IMDSv1 (HttpTokens = optional); this tool's template requires IMDSv2")
    if src.metadata.get("HttpEndpoint") == "disabled":
        src.notes.append("the source disabled the metadata endpoint; this tool's template enables it (IMDSv2 only)")
    if src.monitoring is not None:
        lt.add("detailed_monitoring", bool(src.monitoring))
    t.add("launch_template", lt)

    # -- the group's own settings, exactly: the first plan must change nothing but its launch source
    a = tomlkit.table()
    a.add(tomlkit.comment("the live group's settings, recorded so that the import changes nothing but its launch source"))
    a.add("name", name)
    a.add("min_size", int(group["MinSize"]))
    a.add("max_size", int(group["MaxSize"]))
    if group.get("DesiredCapacity") is not None:
        d = tomlkit.item(int(group["DesiredCapacity"]))
        d.comment("at adoption; the autoscaler owns it (ignored by the stack)")
        a.add("desired_capacity", d)
    subnets = [s for s in (group.get("VPCZoneIdentifier") or "").split(",") if s]
    if subnets:
        a.add("subnet_ids", subnets)
    else:
        a.add("availability_zones", list(group.get("AvailabilityZones") or []))
    propagated = {x["Key"]: x.get("Value", "") for x in group.get("Tags") or [] if x.get("PropagateAtLaunch")}
    group_only = {x["Key"]: x.get("Value", "") for x in group.get("Tags") or [] if not x.get("PropagateAtLaunch")}
    a.add("tags", _inline(propagated))
    if group_only:
        a.add("group_tags", _inline(group_only))
    a.add("health_check_type", group.get("HealthCheckType") or "EC2")
    a.add("health_check_grace_period", int(group.get("HealthCheckGracePeriod") or 0))
    if group.get("DefaultCooldown") is not None:
        a.add("default_cooldown", int(group["DefaultCooldown"]))
    a.add("capacity_rebalance", bool(group.get("CapacityRebalance", False)))
    policies = list(group.get("TerminationPolicies") or [])
    if policies and policies != ["Default"]:  # the provider reads ["Default"] as unset
        a.add("termination_policies", policies)
    if group.get("TargetGroupARNs"):
        a.add("target_group_arns", list(group["TargetGroupARNs"]))
    if group.get("MaxInstanceLifetime"):
        a.add("max_instance_lifetime", int(group["MaxInstanceLifetime"]))
    a.add("protect_from_scale_in", bool(group.get("NewInstancesProtectedFromScaleIn", False)))
    if procs := [p["ProcessName"] for p in group.get("SuspendedProcesses") or []]:
        a.add("suspended_processes", procs)
    if metrics := group.get("EnabledMetrics") or []:
        a.add("enabled_metrics", [m["Metric"] for m in metrics])
        if metrics[0].get("Granularity"):
            a.add("metrics_granularity", metrics[0]["Granularity"])
    if group.get("PlacementGroup"):
        a.add("placement_group", group["PlacementGroup"])
    if group.get("DefaultInstanceWarmup") is not None:
        a.add("default_instance_warmup", int(group["DefaultInstanceWarmup"]))
    if group.get("LoadBalancerNames"):
        src.notes.append(f"classic load balancers {group['LoadBalancerNames']} stay attached; the stack does not manage them")
    if group.get("TrafficSources"):
        kinds = {ts.get("Type") for ts in group["TrafficSources"]}
        if kinds - {"elbv2", "elb", None}:
            src.notes.append("traffic sources other than target groups are not managed by the stack")
    t.add("asg", a)

    # -- what was adopted: the stack imports the group
    ad = tomlkit.table()
    ad.add("asg_name", name)
    ad.add("source", src.kind)
    for k, v in src.adopt.items():
        ad.add(k, v)
    ad.add("source_ami", src.ami)
    ad.add("adopted_at", at)
    t.add("adopt", ad)
    return t


def _block_devices(lt: Table, src: _Source) -> None:
    mappings = [m for m in src.block_devices if m.get("Ebs") and not m.get("NoDevice")]
    for m in src.block_devices:
        if m.get("VirtualName"):
            src.notes.append(f"instance store mapping {m['DeviceName']} -> {m['VirtualName']} is not copied")
        elif m.get("NoDevice"):
            src.notes.append(f"NoDevice mapping {m['DeviceName']} is not copied")
    if not mappings:
        return
    root = next((m for m in mappings if m["DeviceName"] == src.root_device), mappings[0])
    ebs = root["Ebs"]
    lt.add("device_name", root["DeviceName"])
    if ebs.get("VolumeSize"):
        lt.add("root_volume_size", int(ebs["VolumeSize"]))
    if ebs.get("VolumeType"):
        lt.add("root_volume_type", ebs["VolumeType"])
    if ebs.get("Encrypted") is not None:
        lt.add("root_volume_encrypted", bool(ebs["Encrypted"]))
    for k in ("Iops", "Throughput", "KmsKeyId", "SnapshotId"):
        if ebs.get(k):
            src.notes.append(f"the root volume's {k} = {ebs[k]!r} is not copied (the baked AMI's snapshot, the "
                             "volume type's defaults)")
    extra = tomlkit.aot()
    for m in mappings:
        if m is root:
            continue
        e = m["Ebs"]
        dev = tomlkit.table()
        dev.add("device_name", m["DeviceName"])
        for key, field_ in (("VolumeSize", "volume_size"), ("VolumeType", "volume_type"), ("Iops", "iops"),
                            ("Throughput", "throughput"), ("SnapshotId", "snapshot_id")):
            if e.get(key):
                dev.add(field_, e[key])
        if e.get("Encrypted") is not None:
            dev.add("encrypted", bool(e["Encrypted"]))
        dev.add("delete_on_termination", bool(e.get("DeleteOnTermination", True)))
        extra.append(dev)
    if len(extra):
        lt.add("block_devices", extra)

