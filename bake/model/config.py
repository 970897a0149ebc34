"""``bake.toml``: the pools, their images and how to build them.

Validation is pydantic's; this module turns its errors into messages that name the file,
the pool and the key, with the nearest spelling for an unknown key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from bake.errors import ConfigError
from bake.model.refs import parse_reference

DEFAULT_CONFIG = "bake.toml"

POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
BASE_AMI = re.compile(r"^(ami-[0-9a-z]{8,17}|ssm:/.+|asg:[\w+=,.@/-]{1,255})$")
SSH_HOST = re.compile(r"^(public_ip|private_ip|[A-Za-z0-9.-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$")
# A POSIX user name: no shell metacharacters can ever reach a remote command through it.
SSH_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RegistryAuth(_Strict):
    """Credentials for a non-ECR registry, read from the environment at run time.

    The config names environment variables, never secrets: bake.toml is committed.
    """

    username_env: str
    password_env: str


class GpuSettings(_Strict):
    """How a GPU pool's builder is checked and configured (see docs/gpu.md)."""

    # The procedure's floor: "Nvidia GPU driver 410+". A driver major version.
    min_driver_version: Annotated[int, Field(ge=1)] = 410
    validate_image: str = "nvidia/cuda:12.4.1-base-ubuntu22.04"
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

    @field_validator("validate_image")
    @classmethod
    def _validate_image(cls, v: str) -> str:
        parse_reference(v)
        return v


# NVIDIA GPU families: p2..p6, g3..g6(e/f/dn/...), gr6. g4ad carries AMD GPUs; inf/trn (Neuron),
# dl1 (Gaudi), f1 (FPGA) are accelerators without an NVIDIA driver.
NVIDIA_FAMILY = re.compile(r"^(p|g|gr)\d+[a-z0-9-]*$")
NOT_NVIDIA_FAMILIES = frozenset({"g4ad"})


def is_nvidia_instance_type(instance_type: str) -> bool:
    family = instance_type.split(".", 1)[0]
    return "." in instance_type and bool(NVIDIA_FAMILY.match(family)) and family not in NOT_NVIDIA_FAMILIES


class PoolConfig(_Strict):
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
    gpu: bool = False
    gpu_settings: GpuSettings = GpuSettings()
    subnet_id: str | None = None
    ssh_user: str = "ec2-user"
    ssh_host: str = "public_ip"
    # Who may reach the builder's port 22. None: the address this runner connects from
    # (public_ip), the VPC's CIDR (private_ip); a HOST:PORT tunnel must name its CIDRs.
    ssh_cidrs: list[str] | None = None
    ssh_timeout: Annotated[int, Field(gt=0)] = 600
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
    tags: dict[str, str] = {}
    # The rollout side's settings (launch template / configuration / node group, ASG).
    # Opaque to the AMI side; validated by bake.model.rollout.
    rollout: dict[str, Any] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not POOL_NAME.match(v):
            raise ValueError("pool names are lower-case letters, digits, '-' and '_' (at most 63)")
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
                raise ValueError(f"{image!r} is not one of this pool's images{_suggest(image, images)}")
            for name in names:
                if parse_reference(name).digest:
                    raise ValueError(f"alias {name!r} of {image!r}: no digest (the image's own is added)")
        return v

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

    @model_validator(mode="after")
    def _tunnel_needs_cidrs(self) -> PoolConfig:
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

    @property
    def ssh_endpoint(self) -> tuple[str, int] | None:
        """(host, port) when ssh_host names one, else None (ask EC2 for the address)."""
        if self.ssh_host in ("public_ip", "private_ip"):
            return None
        host, _, port = self.ssh_host.rpartition(":")
        return host.strip("[]"), int(port)


class BakeConfig(_Strict):
    path: Path
    region: str | None = None
    pools: dict[str, PoolConfig]
    registries: dict[str, RegistryAuth] = {}
    # The rollout side's stack-wide settings (state backend, provider tags).
    rollout: dict[str, Any] = {}

    def select(self, names: list[str] | None) -> list[PoolConfig]:
        if not names:
            return list(self.pools.values())
        missing = [n for n in names if n not in self.pools]
        if missing:
            raise ConfigError(
                f"{self.path}: no pool named {', '.join(map(repr, missing))}"
                f"{_suggest(missing[0], self.pools)}; pools: {', '.join(self.pools) or '(none)'}"
            )
        return [self.pools[n] for n in names]


# Keys a pool table may hold, and those that belong to the rollout side.
ROLLOUT_POOL_KEYS = frozenset({"launch", "asg", "launch_template", "nodegroup", "adopt"})
POOL_KEYS = frozenset(PoolConfig.model_fields) - {"name", "rollout"}
TOP_KEYS = frozenset({"region", "defaults", "pools", "registries", "state", "provider"})


def _suggest(word: str, choices: Any) -> str:
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def _check_keys(path: Path, where: str, table: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(path, where, f"unknown key {key!r}{_suggest(key, allowed)}")


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
    _check_keys(path, "", raw, TOP_KEYS)
    defaults = raw.get("defaults", {})
    pools = raw.get("pools")
    if not isinstance(defaults, dict):
        raise _fail(path, "defaults", "must be a table")
    if not isinstance(pools, dict) or not pools:
        raise _fail(path, "", "no pools: add at least one [pools.NAME] table")
    _check_keys(path, "defaults", defaults, POOL_KEYS | ROLLOUT_POOL_KEYS)

    built: dict[str, PoolConfig] = {}
    for name, table in pools.items():
        where = f"pools.{name}"
        if not isinstance(table, dict):
            raise _fail(path, where, "must be a table")
        _check_keys(path, where, table, POOL_KEYS | ROLLOUT_POOL_KEYS)
        merged = {**defaults, **table}
        ami_side = {k: v for k, v in merged.items() if k in POOL_KEYS}
        rollout = {k: v for k, v in merged.items() if k in ROLLOUT_POOL_KEYS}
        try:
            built[name] = PoolConfig(name=name, rollout=rollout, **ami_side)
        except ValidationError as e:
            raise _from_validation(path, where, e, table, defaults) from None
        except ValueError as e:  # an image reference rejected outside pydantic's wrapping
            raise _fail(path, where, str(e)) from None

    registries: dict[str, RegistryAuth] = {}
    for host, table in (raw.get("registries") or {}).items():
        try:
            registries[host] = RegistryAuth(**table)
        except (ValidationError, TypeError) as e:
            raise _fail(path, f"registries.{host}", _first_message(e)) from None
    region = raw.get("region")
    if region is not None and not isinstance(region, str):
        raise _fail(path, "region", "must be a string")
    rollout = {k: raw[k] for k in ("state", "provider") if k in raw}
    return BakeConfig(path=path, region=region, pools=built, registries=registries, rollout=rollout)


def _first_message(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return f"{loc}: {_clean(err['msg'])}" if loc else _clean(err["msg"])
    return str(e)


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _from_validation(
    path: Path, where: str, e: ValidationError, table: dict[str, Any], defaults: dict[str, Any]
) -> ConfigError:
    err = e.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = loc[0] if loc else ""
    # A value inherited from [defaults] is reported there, where the user has to fix it.
    origin = where if key in table or key not in defaults else "defaults"
    if err["type"] == "missing":
        return _fail(path, where, f"missing required key {key!r}")
    if err["type"] == "extra_forbidden":
        parent = loc[:-1]
        return _fail(path, ".".join([origin, *parent]), f"unknown key {loc[-1]!r}")
    got = err.get("input")
    detail = _clean(err["msg"])
    if err["type"].endswith("_type") or err["type"] in ("literal_error",):
        detail = f"{detail} (got {got!r})"
    return _fail(path, ".".join([origin, *loc]), detail)
