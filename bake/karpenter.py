"""A pool's Karpenter ``EC2NodeClass`` (karpenter.k8s.aws/v1), from bake.toml and its lock entry.

Pure: the config and the lock come loaded; nothing here asks AWS. Two shapes, by the entry's
cache mode (docs/karpenter.md):

- ``cache = "ami"``: the baked AMI, by id or by the pool's published SSM parameter, and its root
  volume. Karpenter allows ``volumeInitializationRate`` only beside a literal ``snapshotID``
  (its CRD's rule; aws/karpenter-provider-aws#8389), and a root mapping's snapshot must be the
  AMI's own: so a rate selects the AMI by id, and the two ids move together in one reviewed diff.
- ``cache = "data-volume"``: the node's stock AMI (the pool's ``ssm:`` parameter, else the base
  AMI id the cache was baked on) and the cache snapshot at the entry's data device.
"""

from __future__ import annotations

from typing import Any

from bake.errors import UsageError
from bake.model.config import GP3_BASE_IOPS, GP3_BASE_MIBS, BakeConfig, PoolConfig
from bake.model.karpenter import K8S_NAME, KarpenterSettings, restricted_tag
from bake.model.lock import LockData, LockEntry
from bake.model.rollout import BlockDevice
from bake.model.stack import POOL_TAG
from bake.node_user_data import with_cache_mount

API_VERSION = "karpenter.k8s.aws/v1"
KIND = "EC2NodeClass"
AMI_FAMILY = {"al2023": "AL2023", "al2": "AL2", "bottlerocket": "Bottlerocket"}
# metadata.annotations: what the manifest was made from (a review shows them change).
ANNOTATION = "eks-image-bake/"
HEADER = "# Written by `python -m bake karpenter` from bake.toml and amis.lock.json: rerun it after a bake or rollback.\n"


class KarpenterError(UsageError):
    """The pool cannot have a node class yet (no [karpenter] table, no lock entry, a conflict)."""


def pools_with_node_class(config: BakeConfig) -> list[str]:
    return [name for name, pool in config.pools.items() if pool.karpenter is not None]


def node_classes(config: BakeConfig, lock: LockData, names: list[str],
                 region: str | None = None) -> dict[str, dict[str, Any]]:
    """Every named pool's node class, by pool name; the first pool that cannot have one raises."""
    return {pool.name: node_class(config, pool, lock.pool(pool.name).current, region) for pool in config.select(names)}


def node_class(config: BakeConfig, pool: PoolConfig, entry: LockEntry | None,
               region: str | None = None) -> dict[str, Any]:
    """``region``: the cluster's, where Karpenter launches (default: where the pool was baked); in
    a copy region the node class names the copy ([distribute] regions) and, for a data-volume
    pool, that region's stock AMI."""
    where = f"{config.path}: pools.{pool.name}"
    k = pool.karpenter
    if k is None:
        raise KarpenterError(f"{where}.karpenter: missing: add a [pools.{pool.name}.karpenter] table with role (or "
                             "instance_profile), subnet_selector_terms and security_group_selector_terms")
    if entry is None:
        raise KarpenterError(f"pool {pool.name!r}: no current entry in the lock file (never baked, or the lock is "
                             f"another's): run python -m bake build --pool {pool.name}")
    if entry.cache != pool.cache:
        raise KarpenterError(f"{where}.cache: {pool.cache!r}, but the lock's current entry was baked with cache = "
                             f"{entry.cache!r}: run python -m bake build --pool {pool.name}")
    name = k.name or pool.name
    if not K8S_NAME.match(name):
        raise KarpenterError(f"{where}.karpenter.name: the pool's name {name!r} is not a Kubernetes object name "
                             "(no '_'): set name")
    region = region or entry.region
    if entry.ami_in(region) is None or (entry.cache == "data-volume" and entry.base_ami_in(region) is None):
        raise KarpenterError(f"pool {pool.name!r}: the lock has no {'cache snapshot' if entry.cache == 'data-volume' else 'AMI'} "
                             f"in {region} (baked in {entry.region}; copies: {', '.join(sorted(entry.copies or {})) or 'none'}): "
                             f"list {region} in [pools.{pool.name}.distribute] regions and run python -m bake build --pool {pool.name}")
    if entry.cache == "data-volume":
        terms, mappings = _data_volume(where, pool, entry, region)
    else:
        terms, mappings = _ami(where, pool, entry, region)
    tags = {**pool.tags, POOL_TAG: pool.name, **k.tags}
    if bad := [t for t in tags if restricted_tag(t)]:
        raise KarpenterError(f"{where}.tags: {bad[0]!r}: Karpenter sets it itself and refuses it in an EC2NodeClass")
    spec: dict[str, Any] = {
        "amiFamily": AMI_FAMILY[pool.os],
        "amiSelectorTerms": terms,
        **_identity(k),
        "subnetSelectorTerms": [t.model_dump(exclude_defaults=True) for t in k.subnet_selector_terms],
        "securityGroupSelectorTerms": [t.model_dump(exclude_defaults=True) for t in k.security_group_selector_terms],
        "blockDeviceMappings": mappings,
        "tags": tags,
    }
    if entry.cache == "data-volume" and pool.os == "al2023":
        # The cache volume mounted at containerd's root before nodeadm starts it (docs/data-volume.md);
        # Karpenter merges its own NodeConfig part into the MIME document.
        spec["userData"] = with_cache_mount(k.user_data, pool.name)
    elif k.user_data is not None:
        spec["userData"] = k.user_data
    annotations = {f"{ANNOTATION}pool": pool.name, f"{ANNOTATION}fingerprint": entry.fingerprint,
                   f"{ANNOTATION}built-at": entry.built_at}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "annotations": annotations},
            "spec": spec}


def _identity(k: KarpenterSettings) -> dict[str, str]:
    return {"role": k.role} if k.role is not None else {"instanceProfile": k.instance_profile or ""}


def _ami(where: str, pool: PoolConfig, entry: LockEntry,
         region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """cache = "ami": the baked AMI (or its copy in ``region``) and its root volume, with its
    snapshot when it pins the AMI and the lock knows it (a copy's snapshots it does not record)."""
    k, lt = pool.karpenter, pool.rollout.launch_template
    assert k is not None
    ssm = pool.distribute.ssm_parameter
    selector = k.ami_selector or ("ssm_parameter" if ssm else "id")
    rate = lt.volume_initialization_rate
    if selector == "ssm_parameter":
        if ssm is None:
            raise KarpenterError(f'{where}.karpenter.ami_selector: "ssm_parameter", but the pool publishes none: set '
                                 f"[pools.{pool.name}.distribute] ssm_parameter, or ami_selector = \"id\"")
        if rate is not None:
            raise KarpenterError(
                f"{where}.launch_template.volume_initialization_rate: Karpenter sets a rate only beside the root "
                f"volume's snapshot id, which pins one AMI, while the SSM parameter {ssm} moves to the next one "
                f'(aws/karpenter-provider-aws#8389): set [pools.{pool.name}.karpenter] ami_selector = "id", '
                "or drop the rate")
        terms: list[dict[str, Any]] = [{"ssmParameter": ssm}]
        snapshot = None
    else:
        ami = entry.ami_in(region)
        terms = [{"id": ami}]
        # The lock lists the AMI's snapshots in mapping order without their devices: one is the root.
        snapshot = entry.snapshot_ids[0] if len(entry.snapshot_ids) == 1 and region == entry.region else None
        if rate is not None and snapshot is None and region != entry.region:
            raise KarpenterError(
                f"{where}.launch_template.volume_initialization_rate: needs the root snapshot of {ami}, the copy in "
                f"{region}, whose snapshot ids the lock does not record: drop the rate for {region}")
        if rate is not None and snapshot is None:
            raise KarpenterError(
                f"{where}.launch_template.volume_initialization_rate: needs the root snapshot of {entry.ami_id}, and "
                f"the lock records {len(entry.snapshot_ids)} snapshots for it (one is needed): rebake it "
                f"(python -m bake build --pool {pool.name}) or drop the rate")
    size = lt.root_volume_size or pool.root_volume_size
    baked = entry.snapshot_gib if len(entry.snapshot_ids) == 1 else None
    if size is not None and baked is not None and size < baked:
        raise KarpenterError(f"{where}: root_volume_size = {size} GiB is smaller than the AMI's root volume "
                             f"({baked} GiB): EC2 refuses it")
    size = size or baked
    if snapshot is None and size is None:
        raise KarpenterError(f"{where}: the root volume's size is unknown (the lock does not record it): set "
                             "root_volume_size")
    root = _ebs(pool, snapshot=snapshot, size=size, rate=rate)
    if lt.root_volume_encrypted is not None and snapshot is None:
        root["encrypted"] = lt.root_volume_encrypted  # a volume from a snapshot takes the snapshot's
    return terms, [{"deviceName": lt.device_name, "ebs": root, "rootVolume": True}, *_further(pool)]


def _data_volume(where: str, pool: PoolConfig, entry: LockEntry,
                 region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """cache = "data-volume": the stock AMI, and the cache snapshot (its copy in ``region``) at the
    data device."""
    k, lt = pool.karpenter, pool.rollout.launch_template
    assert k is not None
    if k.ami_selector is not None:
        raise KarpenterError(f"{where}.karpenter.ami_selector: a data-volume pool runs the stock AMI (its base_ami); "
                             "remove the key")
    if not entry.cache_snapshot_id or not entry.data_device:
        raise KarpenterError(f"pool {pool.name!r}: the lock's data-volume entry has no cache snapshot or data device: "
                             f"rebake it (python -m bake build --pool {pool.name})")
    # The parameter the pool names (EKS's own, /aws/service/eks/...: Karpenter reads it from v1.4),
    # so the node class and the pool's plan follow the same stock AMI; else the id baked on.
    if pool.base_ami.startswith("ssm:"):
        terms: list[dict[str, Any]] = [{"ssmParameter": pool.base_ami.removeprefix("ssm:")}]
    else:
        terms = [{"id": entry.base_ami_in(region)}]
    mappings: list[dict[str, Any]] = []
    bottlerocket = pool.os == "bottlerocket"
    size = lt.root_volume_size or pool.root_volume_size
    if size is not None:  # else the stock AMI's own root mapping
        mappings.append({"deviceName": lt.device_name, "ebs": _ebs(pool, snapshot=None, size=size, rate=None),
                         **({} if bottlerocket else {"rootVolume": True})})
    # Bottlerocket's data volume holds the kubelet's root too; AL2023's holds the runtime's only.
    snapshot = entry.cache_snapshot_id if region == entry.region else (entry.copies or {}).get(region)
    data = _ebs(pool, snapshot=snapshot, size=None, rate=lt.volume_initialization_rate)
    mappings.append({"deviceName": entry.data_device, "ebs": data, **({"rootVolume": True} if bottlerocket else {})})
    return terms, [*mappings, *_further(pool)]


def _ebs(pool: PoolConfig, snapshot: str | None, size: int | None, rate: int | None) -> dict[str, Any]:
    """One volume with the pool's type; gp3 at its stated baseline, as the launch template does
    (a launch's mapping overrides the AMI's key by key, and the AMI records the builder's volume)."""
    kind = pool.rollout.launch_template.root_volume_type or pool.root_volume_type
    ebs: dict[str, Any] = {"volumeType": kind, "deleteOnTermination": True}
    if snapshot is not None:
        ebs["snapshotID"] = snapshot
    if size is not None:
        ebs["volumeSize"] = f"{size}Gi"
    if kind == "gp3":
        ebs |= {"iops": GP3_BASE_IOPS, "throughput": GP3_BASE_MIBS}
    if rate is not None:
        ebs["volumeInitializationRate"] = rate
    return ebs


def _further(pool: PoolConfig) -> list[dict[str, Any]]:
    """The launch template's further volumes ([[launch_template.block_devices]]): Karpenter's
    mappings replace its defaults, so the node class lists them too."""
    return [{"deviceName": d.device_name, "ebs": _device(pool, d)} for d in pool.rollout.launch_template.block_devices]


def _device(pool: PoolConfig, d: BlockDevice) -> dict[str, Any]:
    ebs = {"volumeType": d.volume_type, "volumeSize": f"{d.volume_size}Gi" if d.volume_size else None,
           "iops": d.iops, "throughput": d.throughput, "encrypted": d.encrypted, "snapshotID": d.snapshot_id,
           "deleteOnTermination": d.delete_on_termination,
           "volumeInitializationRate": pool.rollout.launch_template.volume_initialization_rate if d.snapshot_id else None}
    return {key: v for key, v in ebs.items() if v is not None}


def render(docs: list[dict[str, Any]]) -> str:
    """YAML documents, each after ``---``, keys in the order written (a stable diff)."""
    import yaml

    return HEADER + "".join("---\n" + yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)


def manifest_diff(config: BakeConfig, name: str, before: LockEntry | None, after: LockEntry | None) -> str | None:
    """The unified diff of a pool's node class from one lock entry to another (for `review`);
    None when the pool has no [karpenter] table or nothing changes. A side that cannot be
    rendered shows why, as a comment."""
    import difflib

    pool = config.pools.get(name)
    if pool is None or pool.karpenter is None:
        return None

    def text(entry: LockEntry | None) -> list[str]:
        if entry is None:
            return []
        try:
            return render([node_class(config, pool, entry)]).splitlines(keepends=True)
        except KarpenterError as e:
            return [f"# no EC2NodeClass: {e}\n"]

    diff = "".join(difflib.unified_diff(text(before), text(after), f"{name}.yaml (base)", f"{name}.yaml"))
    return diff or None
