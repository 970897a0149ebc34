"""``bake.toml``: the pools, their images, how to build them and how to roll them out.

One pass reads the whole file into typed models: the AMI side's keys here, the rollout side's
tables (``bake.model.rollout``) inside them. Validation is pydantic's; ``bake.model.base`` turns
its errors into messages that name the file, the pool and the key, with the nearest spelling
for an unknown key. The keys a table may hold are its model's fields: there is no other list.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from bake.errors import ConfigError
from bake.model.base import Strict, check_keys, config_error, fail, suggest
from bake.model.instance_types import launch_configuration_refusal
from bake.model.karpenter import KarpenterSettings
from bake.model.proxy_command import check_template
from bake.model.refs import parse_reference
from bake.model.regions import REGIONS
from bake.model.rollout import PoolRollout, ProviderSettings, StateSettings

DEFAULT_CONFIG = "bake.toml"

POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BASE_AMI = re.compile(r"^(ami-[0-9a-z]{8,17}|ssm:/.+|asg:[\w+=,.@/-]{1,255})$")
SSH_HOST = re.compile(r"^(public_ip|private_ip|[A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$")
# A POSIX user name: no shell metacharacters can ever reach a remote command through it.
SSH_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# gp3's baseline and ratios (AWS EBS volume types page, checked 2026-11-30; docs/ec2-timing.md).
GP3_BASE_IOPS, GP3_BASE_MIBS, GP3_IOPS_PER_GIB, GP3_MIBS_PER_IOPS = 3000, 125, 500, 0.25


class RegistryAuth(Strict):
    """Credentials for a non-ECR registry, read from the environment at run time.

    The config names environment variables, never secrets: bake.toml is committed.
    """

    username_env: str
    password_env: str


class GpuSettings(Strict):
    """How a GPU pool's builder is checked and configured (see docs/gpu.md)."""

    # The lowest driver accepted: a full version ("550.54.14") or a major (550). Unset: what the
    # validation image's own NVIDIA_REQUIRE_CUDA accepts, read from its config at plan time
    # (CUDA 12.4's: >= 550.54.14, or a driver of the 470, 525 or 535 branch; docs/gpu.md).
    min_driver_version: Annotated[int, Field(ge=1)] | str | None = None
    validate_image: str = "nvidia/cuda:12.4.0-base-ubuntu22.04"
    validate_command: str = "nvidia-smi"
    # Programs on the builder, by name on PATH or by path (tests point these at doubles).
    nvidia_smi: str = "nvidia-smi"
    runtime_path: str = "/usr/bin/nvidia-container-runtime"
    # containerd: configure with nvidia-ctk when the builder has it; "" always merges config.toml itself.
    nvidia_ctk: str = "nvidia-ctk"
    # Run through sudo after the config edit. None: `systemctl restart docker|containerd`.
    restart_command: str | None = None
    # The validation's command line, run through sudo; placeholders {image}, {command},
    # {runtime_path}, {name}. None: `docker run --rm --runtime=nvidia ...` or `ctr run --runc-binary ...`.
    validate_run: str | None = None

    @field_validator("min_driver_version")
    @classmethod
    def _min_driver(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and not re.match(r"^\d+(\.\d+)*$", v):
            raise ValueError(f"{v!r} is not a driver version like '550.54.14' or 550")
        return v

    @field_validator("validate_image")
    @classmethod
    def _validate_image(cls, v: str) -> str:
        parse_reference(v)
        return v


ACCOUNT_ID = re.compile(r"^\d{12}$")
ORGANIZATION_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:organization/o-[a-z0-9]{10,32}$")
OU_ARN = re.compile(r"^arn:aws[a-z-]*:organizations::\d{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$")
# A key id, an alias or an ARN of either, as CopyImage's KmsKeyId takes them.
KMS_KEY = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[\w/+=,.@-]{1,250}"
    r"|arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:(key|alias)/[\w/+=,.@-]{1,250})$"
)
SSM_NAME = re.compile(r"^/[a-zA-Z0-9_.\-/]{1,1010}$")


ARNS = {
    "organizations": (ORGANIZATION_ARN, "an organization ARN (arn:aws:organizations::ACCOUNT:organization/o-…)"),
    "organizational_units": (OU_ARN, "an organizational unit ARN (arn:aws:organizations::ACCOUNT:ou/o-…/ou-…)"),
}


def _unique(v: list[str]) -> list[str]:
    if len(set(v)) != len(v):
        raise ValueError("a value is listed twice")
    return v


class Distribution(Strict):
    """``[pools.NAME.distribute]``: where a baked AMI goes besides the bake's own region.

    It lives with the AMI side's keys because the bake acts on it (copies, launch and snapshot
    permissions, recorded in the lock's ``copies``); the stack reads ``ssm_parameter`` and the
    lock's copies from this same model, as it reads every other table.
    """

    # Copies of the AMI, one per region (the bake's own region, if listed, is the original).
    regions: list[str] = []
    # An encrypted copy per region: { REGION = "key id, alias or ARN" } (the region's own key).
    kms_key_ids: dict[str, str] = {}
    # Launch permission on the AMI and every copy; accounts also get create-volume permission on
    # their snapshots, so they can copy the AMI into their own account.
    accounts: list[str] = []
    organizations: list[str] = []
    organizational_units: list[str] = []
    # The stack writes the pool's current AMI id there in every region (data type aws:ec2:image).
    ssm_parameter: str | None = None

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        for region in v:
            if region not in REGIONS:
                raise ValueError(f"{region!r} is not an AWS Region{suggest(region, REGIONS)}")
        return _unique(v)

    @field_validator("kms_key_ids")
    @classmethod
    def _kms(cls, v: dict[str, str]) -> dict[str, str]:
        for region, key in v.items():
            m = KMS_KEY.match(key)
            if not m:
                raise ValueError(f"{region} = {key!r} is not a KMS key id, alias or ARN")
            if m.group("region") and m.group("region") != region:
                raise ValueError(f"{region} = {key!r} is a key of {m.group('region')}: a copy is "
                                 f"encrypted with a key of its own region")
        return v

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, v: list[str]) -> list[str]:
        for account in v:
            if not ACCOUNT_ID.match(account):
                raise ValueError(f"{account!r} is not an AWS account id (12 digits)")
        return _unique(v)

    @field_validator("organizations", "organizational_units")
    @classmethod
    def _arns(cls, v: list[str], info: ValidationInfo) -> list[str]:
        pattern, what = ARNS[info.field_name or ""]
        for arn in v:
            if not pattern.match(arn):
                raise ValueError(f"{arn!r} is not {what}")
        return _unique(v)

    @field_validator("ssm_parameter")
    @classmethod
    def _ssm(cls, v: str | None) -> str | None:
        if v is not None and (not SSM_NAME.match(v) or v.lower().startswith(("/aws", "/ssm"))):
            raise ValueError(f"{v!r} is not an SSM parameter name of your own (/path/NAME; not under /aws or /ssm)")
        return v

    @model_validator(mode="after")
    def _keys_of_listed_regions(self) -> Distribution:
        for region in self.kms_key_ids:
            if region not in self.regions:
                raise ValueError(f"kms_key_ids names {region!r}, which is not in regions {self.regions}")
        return self

    def copy_regions(self, source: str) -> list[str]:
        """The regions that get a copy when the AMI is baked in ``source``."""
        return [r for r in self.regions if r != source]

    @property
    def shared(self) -> bool:
        return bool(self.accounts or self.organizations or self.organizational_units)


# NVIDIA GPU families: p2..p6, g3..g6(e/f/dn/...), gr6. g4ad carries AMD GPUs; inf/trn (Neuron),
# dl1 (Gaudi), f1 (FPGA) are accelerators without an NVIDIA driver.
NVIDIA_FAMILY = re.compile(r"^(p|g|gr)\d+[a-z0-9-]*$")
NOT_NVIDIA_FAMILIES = frozenset({"g4ad"})


def is_nvidia_instance_type(instance_type: str) -> bool:
    family = instance_type.split(".", 1)[0]
    return "." in instance_type and bool(NVIDIA_FAMILY.match(family)) and family not in NOT_NVIDIA_FAMILIES


# Snapshotters a bake fills (the builder's containerd unpacks with overlayfs, EKS's default),
# and why others cannot be baked for.
BAKED_SNAPSHOTTERS = {"overlayfs"}
UNBAKEABLE_SNAPSHOTTERS = {
    "soci": "SOCI's snapshotter (nodeadm's FastImagePull feature gate) keeps its own store under "
            "/var/lib/soci-snapshotter-grpc and fetches layers lazily or in parallel from the registry: "
            "it does not read images unpacked by overlayfs",
    "stargz": "the stargz snapshotter fetches layers lazily from the registry and keeps its own store",
    "nydus": "the nydus snapshotter fetches layers lazily from the registry and keeps its own store",
}


class PoolConfig(Strict):
    """One node pool: what to bake (base AMI, images, runtime) and how (builder settings)."""

    name: str
    base_ami: str
    images: Annotated[list[str], Field(min_length=1)]
    # Other names the pods use for an image (a mirror, a pull-through cache), keyed by the image
    # as listed in `images`: NAME[:TAG], the image's tag when none. The bake adds NAME:TAG and
    # NAME@DIGEST (see bake/references.py).
    aliases: dict[str, list[str]] = {}
    # ECR images also under every regional ECR name of the partition (and the FIPS ones), as
    # the EKS AMI tags its cached images: a copied AMI still matches pods in another region.
    ecr_regional_aliases: bool = False
    instance_type: str = "m5.large"
    runtime: Literal["containerd", "docker"] = "containerd"
    # The snapshotter the pool's nodes unpack images with; only one the bake fills can be
    # named (docs/containerd.md: a SOCI node would not see an overlayfs cache and pulls again).
    snapshotter: str = "overlayfs"
    # Where the cache lives (issue 24): "ami" registers a new AMI; "data-volume" keeps the node's
    # stock AMI and snapshots a second volume that holds the runtime's root.
    cache: Literal["ami", "data-volume"] = "ami"
    # The base AMI's operating system; "bottlerocket" bakes through its admin container.
    os: Literal["al2023", "al2", "bottlerocket"] = "al2023"
    gpu: bool = False
    gpu_settings: GpuSettings = GpuSettings()
    subnet_id: str | None = None
    ssh_user: str = "ec2-user"
    ssh_host: str = "public_ip"
    # Who may reach the builder's port 22. None: the address this runner connects from
    # (public_ip), the VPC's CIDR (private_ip); a HOST:PORT tunnel must name its CIDRs.
    ssh_cidrs: list[str] | None = None
    ssh_timeout: Annotated[int, Field(gt=0)] = 600
    # OpenSSH-style ProxyCommand (%i %h %p %r %%): SSH goes through this program, and the
    # security group then admits nothing inbound (see bake.model.proxy_command).
    ssh_proxy_command: str | None = None
    # "auto": verify against cloud-init's fingerprints in the console output when present,
    # else trust on first use; "console": require them; "tofu": never look.
    host_key_policy: Literal["auto", "console", "tofu"] = "auto"
    pull_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    pull_retries: Annotated[int, Field(ge=0, le=20)] = 3
    ami_timeout: Annotated[int, Field(gt=0)] = 3600
    security_group_ids: list[str] = []
    iam_instance_profile: str | None = None
    root_volume_size: Annotated[int, Field(ge=1, le=16384)] | None = None
    root_volume_type: Literal["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"] = "gp3"
    kms_key_id: str | None = None
    # The builder's gp3 root volume during the bake only (pulls and unpacking are disk-bound at
    # gp3's 3,000 IOPS / 125 MiB/s baseline); the AMI records the node's own volume settings.
    # 0 keeps the baseline. docs/ec2-timing.md justifies the defaults.
    builder_volume_iops: Annotated[int, Field(ge=0, le=80000)] = 6000
    builder_volume_throughput: Annotated[int, Field(ge=0, le=2000)] = 500
    tags: dict[str, str] = {}
    # Bake in the boot-time unit that reads the cached images once (docs/first-start.md).
    prewarm: bool = True
    distribute: Distribution = Distribution()
    # What `bake karpenter` needs for the pool's EC2NodeClass beyond the AMI (docs/karpenter.md).
    karpenter: KarpenterSettings | None = None
    # The rollout side's keys of this pool (launch, asg, launch_template, nodegroup, adopt,
    # fast_snapshot_restore).
    rollout: PoolRollout = PoolRollout()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not POOL_NAME.match(v):
            raise ValueError("pool names are lower-case letters, digits, '-' and '_' (at most 63)")
        return v

    @field_validator("snapshotter")
    @classmethod
    def _snapshotter(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("runtime") == "docker":
            raise ValueError(f"{v!r}: snapshotter is a containerd setting (runtime = \"docker\" pools use dockerd's "
                             "storage driver); remove it")
        if v not in BAKED_SNAPSHOTTERS:
            why = UNBAKEABLE_SNAPSHOTTERS.get(v, "the bake unpacks images with containerd's overlayfs snapshotter")
            raise ValueError(f"{v!r}: {why}; a node using it would not find the cache and would pull every image "
                             f"again. Supported: {', '.join(sorted(BAKED_SNAPSHOTTERS))}")
        return v

    @field_validator("base_ami")
    @classmethod
    def _base_ami(cls, v: str) -> str:
        if not BASE_AMI.match(v):
            raise ValueError(f"{v!r} is not 'ami-…', 'ssm:/PARAMETER' or 'asg:NAME'")
        return v

    @field_validator("images")
    @classmethod
    def _images(cls, v: list[str]) -> list[str]:
        for ref in v:
            parse_reference(ref)  # raises ImageReferenceError (a ValueError-like) with the reason
        if len(set(v)) != len(v):
            raise ValueError("an image is listed twice")
        return v

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        images = info.data.get("images") or []
        for image, names in v.items():
            if image not in images:
                raise ValueError(f"{image!r} is not one of this pool's images{suggest(image, images)}")
            for name in names:
                if parse_reference(name).digest:
                    raise ValueError(f"alias {name!r} of {image!r}: no digest (the image's own is added)")
        return v
    @model_validator(mode="after")
    def _builder_volume(self) -> PoolConfig:
        iops, mibs = self.builder_volume_iops, self.builder_volume_throughput
        if iops and iops < GP3_BASE_IOPS:
            raise ValueError(f"builder_volume_iops = {iops}: gp3 starts at {GP3_BASE_IOPS} (0 keeps the baseline)")
        if mibs and mibs < GP3_BASE_MIBS:
            raise ValueError(f"builder_volume_throughput = {mibs}: gp3 starts at {GP3_BASE_MIBS} MiB/s (0 keeps the baseline)")
        if mibs and mibs > (iops or GP3_BASE_IOPS) * GP3_MIBS_PER_IOPS:
            raise ValueError(f"builder_volume_throughput = {mibs} MiB/s needs at least {int(mibs / GP3_MIBS_PER_IOPS)} "
                             f"builder_volume_iops (gp3 allows 0.25 MiB/s per IOPS)")
        if iops and self.root_volume_size and iops > self.root_volume_size * GP3_IOPS_PER_GIB:
            raise ValueError(f"builder_volume_iops = {iops} needs a root volume of at least {-(-iops // GP3_IOPS_PER_GIB)} GiB "
                             f"(gp3 allows {GP3_IOPS_PER_GIB} IOPS per GiB; root_volume_size = {self.root_volume_size})")
        return self

    @field_validator("ssh_user")
    @classmethod
    def _ssh_user(cls, v: str) -> str:
        if not SSH_USER.match(v):
            raise ValueError(f"{v!r} is not a valid user name")
        return v

    @field_validator("ssh_host")
    @classmethod
    def _ssh_host(cls, v: str) -> str:
        if not SSH_HOST.match(v):
            raise ValueError(f"{v!r} is not 'public_ip', 'private_ip' or 'HOST:PORT'")
        return v

    @field_validator("ssh_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str] | None) -> list[str] | None:
        for c in v or []:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise ValueError(f"{c!r} is not a CIDR block") from None
        return v

    @field_validator("ssh_proxy_command")
    @classmethod
    def _proxy_command(cls, v: str | None) -> str | None:
        if v is not None:
            check_template(v)
        return v

    @model_validator(mode="after")
    def _tunnel_needs_cidrs(self) -> PoolConfig:
        if self.ssh_proxy_command is not None:
            if self.ssh_cidrs is not None:
                raise ValueError("ssh_cidrs has no use with ssh_proxy_command: the builder's group admits nothing inbound")
            return self
        if self.ssh_host not in ("public_ip", "private_ip") and self.ssh_cidrs is None:
            raise ValueError("ssh_host is a HOST:PORT tunnel: set ssh_cidrs to who may reach port 22")
        return self

    @model_validator(mode="after")
    def _gpu_needs_gpu_instance(self) -> PoolConfig:
        # Fail at config time: a builder without an NVIDIA GPU can only fail the driver check later.
        if self.gpu and not is_nvidia_instance_type(self.instance_type):
            raise ValueError(
                f"gpu = true needs an NVIDIA GPU instance type (p*, g* but g4ad, e.g. g4dn.xlarge); "
                f"instance_type {self.instance_type!r} has none"
            )
        return self

    @model_validator(mode="after")
    def _launch_configuration_instance_type(self) -> PoolConfig:
        # Here, where both the pool's instance_type and its rollout keys are known: `plan`, `build`
        # and the stack's synthesis (main.py) all load the config through this one check.
        if self.rollout.configured and self.rollout.launch == "configuration":
            refusal = launch_configuration_refusal(self.rollout.launch_template.instance_type or self.instance_type)
            if refusal:
                raise ValueError(refusal)
        return self

    @model_validator(mode="after")
    def _cache_fits(self) -> PoolConfig:
        # docs/data-volume.md: a launch configuration cannot carry the user data that mounts the
        # volume in nodeadm's format with the user's own; Bottlerocket's root is read-only.
        if self.cache == "data-volume" and self.rollout.launch == "configuration":
            raise ValueError('cache = "data-volume" needs launch = "template", "nodegroup" or "none": the node maps the cache '
                             'snapshot and mounts it through its launch template, which launch = "configuration" has not')
        if self.cache == "data-volume" and (self.runtime != "containerd" or self.os == "al2"):
            raise ValueError('cache = "data-volume" needs runtime = "containerd" on os = "al2023" or "bottlerocket": '
                             "the node mounts the volume at containerd's root before nodeadm starts containerd "
                             "(AL2 and dockerd start their runtime before cloud-init could mount it)")
        if self.cache == "data-volume" and self.distribute.regions and not self.base_ami.startswith("ssm:"):
            raise ValueError('cache = "data-volume" with [distribute] regions needs base_ami = "ssm:PARAMETER": the '
                             "nodes in each region launch that region's stock AMI, which the bake resolves there "
                             f"({self.base_ami!r} names one region's AMI)")
        if self.cache == "data-volume" and (self.distribute.organizations or self.distribute.organizational_units):
            raise ValueError('cache = "data-volume" with [distribute] organizations or organizational_units: EC2 shares '
                             "a snapshot with accounts only (ModifySnapshotAttribute's UserIds): list the accounts")
        if self.os == "bottlerocket" and self.cache != "data-volume":
            raise ValueError('os = "bottlerocket" needs cache = "data-volume": Bottlerocket\'s root filesystem is '
                             'read-only and its images live on the data volume')
        return self

    @property
    def ssh_endpoint(self) -> tuple[str, int] | None:
        """(host, port) when ssh_host names one, else None (ask EC2 for the address)."""
        if self.ssh_host in ("public_ip", "private_ip"):
            return None
        host, _, port = self.ssh_host.rpartition(":")
        return host.strip("[]"), int(port)


class BakeConfig(Strict):
    path: Path
    region: str | None = None
    pools: dict[str, PoolConfig]
    registries: dict[str, RegistryAuth] = {}
    # The rollout side's stack-wide tables.
    state: StateSettings = StateSettings()
    provider: ProviderSettings = ProviderSettings()

    @model_validator(mode="after")
    def _node_regions_have_the_ami(self) -> BakeConfig:
        for name, pool in self.pools.items():
            node = pool.rollout.node_region
            if node and self.region and node != self.region and node not in pool.distribute.regions:
                raise ValueError(f"pools.{name}.node_region: {node!r} gets no copy of the AMI (baked in "
                                 f"{self.region}): add it to [pools.{name}.distribute] regions")
        return self

    def select(self, names: list[str] | None) -> list[PoolConfig]:
        if not names:
            return list(self.pools.values())
        missing = [n for n in names if n not in self.pools]
        if missing:
            raise ConfigError(
                f"{self.path}: no pool named {', '.join(map(repr, missing))}"
                f"{suggest(missing[0], self.pools)}; pools: {', '.join(self.pools) or '(none)'}"
            )
        return [self.pools[n] for n in names]

    # What only the rollout stack requires (a bake needs neither).
    def stack_region(self) -> str:
        """The one region the stack deploys to."""
        if not self.region:
            raise ConfigError(f"{self.path}: region: missing (the stack deploys to one region; "
                              f'add region = "us-east-1")')
        return self.region

    def rollout_of(self, name: str) -> PoolRollout:
        """A pool's rollout settings, for the stack: a pool that has none is an error there."""
        rollout = self.pools[name].rollout
        if not rollout.configured:
            where = f"pools.{name}"
            raise ConfigError(
                f"{self.path}: {where}: no rollout settings: add a [{where}.asg] table with subnet_ids "
                f'or availability_zones (or set launch = "none" to bake this pool without rolling it out)'
            )
        return rollout


# The keys each level of the file may hold, from the models.
AMI_POOL_KEYS = frozenset(PoolConfig.model_fields) - {"name", "rollout"}
ROLLOUT_POOL_KEYS = frozenset(PoolRollout.model_fields)
POOL_KEYS = AMI_POOL_KEYS | ROLLOUT_POOL_KEYS
TOP_KEYS = frozenset(BakeConfig.model_fields) - {"path"} | {"defaults"}


def load_config(path: str | Path) -> BakeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (pass --config, or create bake.toml)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> BakeConfig:
    check_keys(path, "", raw, TOP_KEYS)
    defaults = raw.get("defaults", {})
    pools = raw.get("pools")
    if not isinstance(defaults, dict):
        raise fail(path, "defaults", "must be a table")
    if not isinstance(pools, dict) or not pools:
        raise fail(path, "", "no pools: add at least one [pools.NAME] table")
    check_keys(path, "defaults", defaults, POOL_KEYS)
    built = {name: _pool(path, name, table, defaults) for name, table in pools.items()}

    registries: dict[str, RegistryAuth] = {}
    for host, table in (raw.get("registries") or {}).items():
        where = f"registries.{host}"
        if not isinstance(table, dict):
            raise fail(path, where, "must be a table")
        try:
            registries[host] = RegistryAuth(**table)
        except ValidationError as e:
            raise config_error(path, where, e, RegistryAuth) from None
    top = {k: raw[k] for k in ("region", "state", "provider") if k in raw}
    try:
        config = BakeConfig(path=path, pools=built, registries=registries, **top)
    except ValidationError as e:
        raise config_error(path, "", e, BakeConfig) from None
    _check_zones_in_region(config)
    return config


def _check_zones_in_region(config: BakeConfig) -> None:
    """Fast snapshot restore zones belong to the file's region (when it names one), where the
    pool's nodes must live: the lock records the snapshots of the original AMI only, not those of
    its copies, so a pool launching a copy (node_region elsewhere) cannot name the copy's snapshots."""
    for name, pool in config.pools.items():
        fsr = pool.rollout.fast_snapshot_restore
        if fsr is None or not config.region:
            continue
        node = pool.rollout.node_region
        if node and node != config.region:
            raise fail(config.path, f"pools.{name}.fast_snapshot_restore",
                       f"the pool's nodes live in node_region {node!r}, on a copy of the AMI whose snapshots the "
                       f"lock does not record; fast snapshot restore is for pools whose nodes are in the bake's "
                       f"region {config.region} (drop node_region or this table)")
        if wrong := fsr.outside(config.region):
            raise fail(config.path, f"pools.{name}.fast_snapshot_restore.availability_zones",
                       f"{', '.join(map(repr, wrong))} {'is' if len(wrong) == 1 else 'are'} not in the region {config.region}")


def _pool(path: Path, name: str, table: Any, defaults: dict[str, Any]) -> PoolConfig:
    where = f"pools.{name}"
    if not isinstance(table, dict):
        raise fail(path, where, "must be a table")
    check_keys(path, where, table, POOL_KEYS)
    merged = {**defaults, **table}
    # A value inherited from [defaults] is reported there, where the user has to fix it.
    origin = {k: "defaults" for k in defaults if k not in table}
    try:
        rollout = PoolRollout(**{k: v for k, v in merged.items() if k in ROLLOUT_POOL_KEYS})
    except ValidationError as e:
        raise config_error(path, where, e, PoolRollout, origin) from None
    try:
        return PoolConfig(name=name, rollout=rollout, **{k: v for k, v in merged.items() if k in AMI_POOL_KEYS})
    except ValidationError as e:
        raise config_error(path, where, e, PoolConfig, origin) from None
    except ValueError as e:  # an image reference rejected outside pydantic's wrapping
        raise fail(path, where, str(e)) from None
