"""GPU pools, the pure part: read ``nvidia-smi``'s answer, hold it against the pool's floor, and
merge the container runtimes' configs so that NVIDIA's runtime is the default.

No I/O here: ``bake.steps.gpu`` reads the files over SSH, calls these, and writes the result back.
Both merges keep every setting they do not own (other runtimes, registries, log options, plugins).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any

import tomlkit
from tomlkit.items import Table

from bake.errors import BakeError

NVIDIA_RUNTIME = "nvidia"
RUNC_V2 = "io.containerd.runc.v2"
# The CRI plugin's table in each containerd config version (1: containerd 1.x legacy layout,
# 2: containerd 1.x, 3: containerd 2.x).
CRI_PLUGIN = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
VERSION = re.compile(r"^\d+(\.\d+)*$")


class GpuError(BakeError):
    """The builder is not a working GPU host: no driver, a driver below the floor, a failed
    validation, or a runtime config that cannot be merged."""


@dataclass(frozen=True)
class Gpu:
    driver_version: str  # "535.104.05"
    name: str  # "Tesla T4"

    @property
    def major(self) -> int:
        return int(self.driver_version.split(".", 1)[0])


def parse_query(output: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=driver_version,name --format=csv,noheader``: one line per GPU,
    ``535.104.05, Tesla T4``."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        version, sep, name = (part.strip() for part in line.partition(","))
        if not sep or not VERSION.match(version):
            raise GpuError(f"unexpected nvidia-smi output {line.strip()!r} (want 'DRIVER_VERSION, NAME')")
        gpus.append(Gpu(version, name))
    if not gpus:
        raise GpuError("nvidia-smi answered but listed no GPU")
    return gpus


def _driver_tuple(v: int | str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(v).split("."))


# The lowest Linux x86_64 driver of each CUDA release's GA toolkit, i.e. the driver that
# reports that CUDA version, which is what nvidia-container-toolkit compares `cuda>=X.Y` with.
# NVIDIA's CUDA Toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions": 12.4
# read 2026-11-30, 11.x read 2026-12-06 (copies of the table, through the project's search
# tool; docs/gpu.md). Only versions confirmed so: another CUDA version is refused with the
# setting that overrides it, never guessed.
CUDA_DRIVER = {
    "11.0": "450.51.05", "11.1": "455.23", "11.2": "460.27.03", "11.3": "465.19.01", "11.4": "470.42.01",
    "11.5": "495.29.05", "11.6": "510.39.01", "12.4": "550.54.14",
}
REQUIRE_CUDA = "NVIDIA_REQUIRE_CUDA"
SETTING = "gpu_settings.min_driver_version"


@dataclass(frozen=True)
class DriverFloor:
    """The drivers a pool accepts: at least ``minimum``, or any driver of one of ``branches``
    (``[low, high)`` ranges an image lists for its forward-compatible datacenter drivers, such as
    CUDA 12.4's ``brand=tesla,driver>=535,driver<536``). ``source`` says where it came from."""

    minimum: str
    source: str
    branches: tuple[tuple[str, str], ...] = ()

    @classmethod
    def configured(cls, value: int | str) -> DriverFloor:
        return cls(str(value), SETTING)

    def accepts(self, driver: str) -> bool:
        v = _driver_tuple(driver)
        return v >= _driver_tuple(self.minimum) or any(
            _driver_tuple(lo) <= v < _driver_tuple(hi) for lo, hi in self.branches)

    def describe(self) -> str:
        text = f"driver >= {self.minimum}"
        if self.branches:
            text += " or a driver of branch " + ", ".join(
                lo if _driver_tuple(hi) == (_driver_tuple(lo)[0] + 1,) else f"{lo} to below {hi}"
                for lo, hi in self.branches)
        return text


def floor_from_requirement(requirement: str, image: str) -> DriverFloor:
    """The floor an image's NVIDIA_REQUIRE_CUDA sets, as nvidia-container-toolkit reads it
    (internal/requirements/constraints/factory.go): space-separated terms are ORed, the
    comma-separated constraints of a term ANDed. ``cuda>=X.Y`` becomes CUDA X.Y's driver; a
    term of driver bounds becomes a branch range, whatever its brand (nvidia-smi's query does
    not say the GPU's brand; the validation through NVIDIA's runtime checks it, so this floor
    is never stricter than the image)."""
    source = f"{image}'s {REQUIRE_CUDA}"
    minimum: str | None = None
    branches: list[tuple[str, str]] = []
    for term in requirement.split():
        low = high = cuda = None
        for factor in term.split(","):
            m = re.fullmatch(r"(cuda|driver|brand|arch)(>=|<=|==|!=|=|<|>)(\S+)", factor)
            if not m:
                raise GpuError(f"{source}: cannot read the constraint {factor!r} of {requirement!r}")
            name, op, value = m.groups()
            if name == "cuda" and op == ">=":
                cuda = value
            elif name == "driver" and op == ">=":
                low = value
            elif name == "driver" and op == "<":
                high = value
        if cuda is not None:
            key = ".".join(cuda.split(".")[:2])
            if key not in CUDA_DRIVER:
                raise GpuError(f"{source} asks for CUDA {cuda}, whose driver this tool does not know: "
                               f"set {SETTING}")
            found = CUDA_DRIVER[key]
            minimum = found if minimum is None or _driver_tuple(found) < _driver_tuple(minimum) else minimum
        elif low is not None and high is not None and (low, high) not in branches:
            branches.append((low, high))
    if minimum is None:
        raise GpuError(f"{source} ({requirement!r}) names no cuda>= version: set {SETTING}")
    return DriverFloor(minimum, source, tuple(sorted(branches, key=lambda b: _driver_tuple(b[0]))))


def floor_from_env(env: list[str], image: str) -> DriverFloor:
    """The floor from an image config's ``Env`` (``NAME=VALUE`` strings)."""
    for item in env:
        name, _, value = item.partition("=")
        if name == REQUIRE_CUDA:
            return floor_from_requirement(value, image)
    raise GpuError(f"the validation image {image} declares no {REQUIRE_CUDA} in its config: "
                   f"set {SETTING} (the lowest driver it runs on)")


def check_driver(gpus: list[Gpu], floor: DriverFloor | int | str) -> str:
    """The driver version to record; GpuError if any GPU's driver is not accepted by ``floor``
    (a configured minimum: a full version such as "550.54.14", or a major such as 550)."""
    if not isinstance(floor, DriverFloor):
        floor = DriverFloor.configured(floor)
    refused = [g for g in gpus if not floor.accepts(g.driver_version)]
    if refused:
        g = min(refused, key=lambda g: _driver_tuple(g.driver_version))
        if floor.source == SETTING:
            why = f"is below the pool's minimum {floor.minimum} ({SETTING})"
        else:
            why = f"does not meet {floor.source}: {floor.describe()} (override: {SETTING})"
        raise GpuError(f"NVIDIA driver {g.driver_version} ({g.name}) {why}; use a base AMI with a newer driver")
    return min(gpus, key=lambda g: _driver_tuple(g.driver_version)).driver_version


def summary(gpus: list[Gpu]) -> str:
    names: dict[str, int] = {}
    for g in gpus:
        names[g.name] = names.get(g.name, 0) + 1
    return ", ".join(f"{n} x {name}" if n > 1 else name for name, n in names.items())


# --- Docker: /etc/docker/daemon.json -------------------------------------------------------------

def merge_daemon_json(text: str | None, runtime_path: str) -> str:
    """daemon.json with ``default-runtime: nvidia`` and ``runtimes.nvidia``; every other key kept."""
    data: dict[str, Any] = {}
    if text and text.strip():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GpuError(f"/etc/docker/daemon.json on the builder is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise GpuError("/etc/docker/daemon.json on the builder is not a JSON object")
    runtimes = data.get("runtimes") or {}
    if not isinstance(runtimes, dict):
        raise GpuError("/etc/docker/daemon.json: 'runtimes' is not an object")
    nvidia = dict(runtimes.get(NVIDIA_RUNTIME) or {})
    nvidia["path"] = runtime_path
    nvidia.setdefault("runtimeArgs", [])
    data["runtimes"] = {**runtimes, NVIDIA_RUNTIME: nvidia}
    data["default-runtime"] = NVIDIA_RUNTIME
    return json.dumps(data, indent=4) + "\n"


def docker_default(text: str) -> tuple[str | None, str | None]:
    """(default runtime, the nvidia runtime's path) as daemon.json says."""
    data = json.loads(text)
    return data.get("default-runtime"), ((data.get("runtimes") or {}).get(NVIDIA_RUNTIME) or {}).get("path")


# --- containerd: /etc/containerd/config.toml ----------------------------------------------------

def _version(doc: dict[str, Any]) -> int:
    raw = doc.get("version", 1)
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise GpuError(f"/etc/containerd/config.toml: version {raw!r} is not a number") from None
    if version not in CRI_PLUGIN:
        raise GpuError(f"/etc/containerd/config.toml: config version {version} is not supported "
                       f"(supported: {', '.join(map(str, CRI_PLUGIN))})")
    return version


def _table(parent: Any, key: str) -> Table:
    if key not in parent:
        parent[key] = tomlkit.table()
    found = parent[key]
    if not isinstance(found, dict):
        raise GpuError(f"/etc/containerd/config.toml: {key!r} is not a table")
    return found  # type: ignore[return-value]


def merge_containerd_toml(text: str | None, runtime_path: str, empty_version: int | None = 2) -> str:
    """config.toml with the CRI's default runtime ``nvidia`` (runc v2 running ``runtime_path``).

    Comments, order and every other setting are kept (tomlkit round-trips the file). The nvidia
    runtime copies runc's options (SystemdCgroup...) as nvidia-ctk does, then sets BinaryName.
    An absent or empty file becomes a config of ``empty_version`` (the builder's containerd's:
    2 for 1.x, 3 for 2.x) holding just this.
    """
    try:
        doc = tomlkit.parse(text or "")
    except Exception as e:  # tomlkit's ParseError and friends
        raise GpuError(f"/etc/containerd/config.toml on the builder is not valid TOML: {e}") from None
    if not doc:
        doc["version"] = empty_version or 2
    plugin = CRI_PLUGIN[_version(doc)]
    containerd = _table(_table(_table(doc, "plugins"), plugin), "containerd")
    containerd["default_runtime_name"] = NVIDIA_RUNTIME
    runtimes = _table(containerd, "runtimes")
    runc_options = (runtimes.get("runc") or {}).get("options") or {}
    nvidia = _table(runtimes, NVIDIA_RUNTIME)
    nvidia["runtime_type"] = RUNC_V2
    options = _table(nvidia, "options")
    for key, value in runc_options.items():
        if key != "BinaryName" and key not in options:
            options[key] = value.unwrap() if hasattr(value, "unwrap") else value
    options["BinaryName"] = runtime_path
    return tomlkit.dumps(doc)


def containerd_default(text: str) -> tuple[str | None, str | None]:
    """(the CRI's default runtime, the nvidia runtime's BinaryName) as config.toml says."""
    doc = tomllib.loads(text)
    containerd = doc.get("plugins", {}).get(CRI_PLUGIN[_version(doc)], {}).get("containerd", {})
    nvidia = containerd.get("runtimes", {}).get(NVIDIA_RUNTIME, {})
    return containerd.get("default_runtime_name"), nvidia.get("options", {}).get("BinaryName")
