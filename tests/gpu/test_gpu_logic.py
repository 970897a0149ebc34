"""GPU pools without a GPU: nvidia-smi parsing and the driver floor, the daemon.json and
config.toml merges, the config keys and the instance type check, the step order."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from bake.build import steps_for
from bake.errors import ConfigError
from bake.gpu import (
    DriverFloor, GpuError, check_driver, containerd_default, docker_default, floor_from_env, floor_from_requirement,
    merge_containerd_toml, merge_daemon_json, parse_query,
)
from bake.model.config import GpuSettings, is_nvidia_instance_type, parse_config
from bake.model.lock import LockFile

RT = "/usr/bin/nvidia-container-runtime"


# --- nvidia-smi ----------------------------------------------------------------------------------

def test_parses_one_line_per_gpu():
    gpus = parse_query("535.104.05, Tesla T4\n535.104.05, Tesla T4\n\n")
    assert [(g.driver_version, g.name, g.major) for g in gpus] == [("535.104.05", "Tesla T4", 535)] * 2
    assert parse_query("410.48, Tesla V100-SXM2-16GB")[0].name == "Tesla V100-SXM2-16GB"


@pytest.mark.parametrize("out", ["", "\n \n", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
                                 "[N/A], Tesla T4", "driver_version, name"])
def test_unparseable_or_empty_answers_fail(out):
    with pytest.raises(GpuError):
        parse_query(out)


def test_threshold_is_the_major_version():
    assert check_driver(parse_query("410.48, Tesla V100"), 410) == "410.48"
    assert check_driver(parse_query("535.104.05, Tesla T4"), 410) == "535.104.05"
    with pytest.raises(GpuError, match=r"390\.116 \(Tesla K80\) is below the pool's minimum 410"):
        check_driver(parse_query("390.116, Tesla K80"), 410)
    with pytest.raises(GpuError, match="minimum 550"):
        check_driver(parse_query("535.104.05, Tesla T4"), 550)


def test_a_full_version_floor_compares_every_part():
    assert check_driver(parse_query("550.54.14, L4"), "550.54.14") == "550.54.14"
    assert check_driver(parse_query("550.90.07, L4"), "550.54.14") == "550.90.07"
    with pytest.raises(GpuError, match=r"550\.40\.07 \(L4\) is below the pool's minimum 550\.54\.14"):
        check_driver(parse_query("550.40.07, L4"), "550.54.14")
    with pytest.raises(GpuError, match="below the pool's minimum 550.54.14"):
        check_driver(parse_query("535.104.05, Tesla T4"), "550.54.14")
    with pytest.raises(ConfigError, match="not a driver version"):
        _cfg(gpu=True, instance_type="g5.xlarge", gpu_settings={"min_driver_version": "550.x"})


def test_the_lowest_driver_among_gpus_counts():
    gpus = parse_query("535.104.05, A\n470.82.01, B")
    with pytest.raises(GpuError, match="470.82.01"):
        check_driver(gpus, 500)
    assert check_driver(gpus, 410) == "470.82.01"


# --- the floor from the validation image's NVIDIA_REQUIRE_CUDA ----------------------------------

# nvidia/cuda:12.4.0-base-ubuntu22.04's, as NVIDIA's Dockerfiles set it (gitlab.com/nvidia/
# container-images/cuda, dist/12.4.x; seen in public Dockerfiles through the search tool 2026-12-06).
BRANDS = ["tesla", "unknown", "nvidia", "nvidiartx", "geforce", "geforcertx", "quadro", "quadrortx", "titan", "titanrtx"]
CUDA_12_4 = "cuda>=12.4 " + " ".join(f"brand={b},driver>={d},driver<{d + 1}" for d in (470, 525, 535) for b in BRANDS)
IMAGE = "nvidia/cuda:12.4.0-base-ubuntu22.04"


def test_the_cuda_12_4_image_accepts_r550_and_the_listed_branches():
    floor = floor_from_requirement(CUDA_12_4, IMAGE)
    assert floor == DriverFloor("550.54.14", f"{IMAGE}'s NVIDIA_REQUIRE_CUDA", (("470", "471"), ("525", "526"), ("535", "536")))
    assert check_driver(parse_query("535.104.05, Tesla T4"), floor) == "535.104.05"  # R535 LTS
    assert check_driver(parse_query("550.54.15, NVIDIA A10G"), floor) == "550.54.15"  # R550
    assert check_driver(parse_query("570.133.20, NVIDIA L4"), floor) == "570.133.20"


@pytest.mark.parametrize("driver", ["520.61.05", "545.23.08", "536.25", "550.40.07", "390.116"])
def test_a_driver_neither_new_enough_nor_of_a_listed_branch_is_refused(driver):
    floor = floor_from_requirement(CUDA_12_4, IMAGE)
    with pytest.raises(GpuError) as exc:
        check_driver(parse_query(f"{driver}, Tesla T4"), floor)
    assert str(exc.value) == (
        f"NVIDIA driver {driver} (Tesla T4) does not meet {IMAGE}'s NVIDIA_REQUIRE_CUDA: driver >= 550.54.14 or a "
        "driver of branch 470, 525, 535 (override: gpu_settings.min_driver_version); use a base AMI with a newer driver")


def test_a_configured_floor_wins_over_the_image():
    # The image accepts R535; a pool that sets 550 does not.
    with pytest.raises(GpuError, match=r"535\.104\.05 \(Tesla T4\) is below the pool's minimum 550 "
                                       r"\(gpu_settings.min_driver_version\)"):
        check_driver(parse_query("535.104.05, Tesla T4"), DriverFloor.configured(550))


def test_the_requirement_is_read_as_nvidia_container_toolkit_reads_it():
    # Terms ORed by spaces, constraints ANDed by commas; only cuda>= and driver bounds matter here.
    floor = floor_from_requirement("cuda>=11.4 brand=tesla,driver>=418,driver<419 arch=x86_64", "img")
    assert (floor.minimum, floor.branches) == ("470.42.01", (("418", "419"),))
    assert floor_from_env(["PATH=/usr/bin", f"NVIDIA_REQUIRE_CUDA={CUDA_12_4}"], IMAGE).minimum == "550.54.14"
    with pytest.raises(GpuError, match="declares no NVIDIA_REQUIRE_CUDA.*set gpu_settings.min_driver_version"):
        floor_from_env(["PATH=/usr/bin"], "busybox")
    with pytest.raises(GpuError, match="CUDA 99.1, whose driver this tool does not know: set gpu_settings"):
        floor_from_requirement("cuda>=99.1", "img")
    with pytest.raises(GpuError, match="names no cuda>= version"):
        floor_from_requirement("brand=tesla,driver>=535,driver<536", "img")
    with pytest.raises(GpuError, match="cannot read the constraint"):
        floor_from_requirement("cuda~12", "img")


# --- daemon.json ---------------------------------------------------------------------------------

def test_daemon_json_from_nothing():
    for text in (None, "", "  \n"):
        data = json.loads(merge_daemon_json(text, RT))
        assert data == {"runtimes": {"nvidia": {"path": RT, "runtimeArgs": []}}, "default-runtime": "nvidia"}


def test_daemon_json_keeps_existing_keys_and_runtimes():
    old = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "10"}, "live-restore": True,
           "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 65536}},
           "runtimes": {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": "/old", "runtimeArgs": ["--debug"]}},
           "default-runtime": "runc"}
    merged = json.loads(merge_daemon_json(json.dumps(old), RT))
    assert merged["default-runtime"] == "nvidia"
    assert merged["runtimes"] == {"crun": {"path": "/usr/bin/crun"}, "nvidia": {"path": RT, "runtimeArgs": ["--debug"]}}
    for key in ("log-driver", "log-opts", "live-restore", "default-ulimits"):
        assert merged[key] == old[key]
    assert docker_default(json.dumps(merged)) == ("nvidia", RT)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"runtimes": 3}'])
def test_daemon_json_that_cannot_be_merged_fails(text):
    with pytest.raises(GpuError):
        merge_daemon_json(text, RT)


# --- config.toml ---------------------------------------------------------------------------------

# The shape of the EKS AL2023 AMI's containerd config (templates/al2023/runtime/containerd-config.toml).
EKS_TOML = """\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

# a comment the merge keeps
[grpc]
address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri".containerd]
default_runtime_name = "runc"
discard_unpacked_layers = true

[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5"

[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/opt/cni/bin"
conf_dir = "/etc/cni/net.d"
"""


def test_containerd_toml_keeps_every_other_setting():
    out = merge_containerd_toml(EKS_TOML, RT)
    assert "# a comment the merge keeps" in out
    doc, old = tomllib.loads(out), tomllib.loads(EKS_TOML)
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    assert cri["containerd"]["runtimes"]["nvidia"] == {
        "runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True, "BinaryName": RT}}
    # everything else as it was
    assert cri["containerd"]["runtimes"]["runc"] == old["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert cri["containerd"]["discard_unpacked_layers"] is True
    for key in ("sandbox_image", "registry", "cni"):
        assert cri[key] == old["plugins"]["io.containerd.grpc.v1.cri"][key]
    for key in ("version", "root", "state", "grpc"):
        assert doc[key] == old[key]
    assert containerd_default(out) == ("nvidia", RT)
    assert merge_containerd_toml(out, RT) == out  # idempotent


def test_containerd_toml_keeps_other_plugins():
    host = Path("/etc/containerd/config.toml")
    text = host.read_text() if host.exists() else (
        'version = 2\n[plugins."io.containerd.internal.v1.opt"]\npath = "/var/lib/containerd/opt"\n')
    doc = tomllib.loads(merge_containerd_toml(text, RT))
    old = tomllib.loads(text)
    for name, table in old.get("plugins", {}).items():
        for key, value in table.items():
            if key != "containerd":
                assert doc["plugins"][name][key] == value
    assert doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"] == "nvidia"


def test_containerd_toml_from_nothing_and_other_versions():
    assert containerd_default(merge_containerd_toml(None, RT)) == ("nvidia", RT)
    assert tomllib.loads(merge_containerd_toml("", RT))["version"] == 2
    v3 = tomllib.loads(merge_containerd_toml("version = 3\n", RT))
    assert v3["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["default_runtime_name"] == "nvidia"
    v1 = tomllib.loads(merge_containerd_toml('root = "/var/lib/containerd"\n', RT))
    assert v1["plugins"]["cri"]["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == RT
    with pytest.raises(GpuError, match="version 9"):
        merge_containerd_toml("version = 9\n", RT)
    with pytest.raises(GpuError, match="not valid TOML"):
        merge_containerd_toml("[plugins\n", RT)


# --- config and steps ----------------------------------------------------------------------------

def _cfg(**pool):
    table = {"base_ami": "ami-0123456789abcdef0", "images": ["python:3.12"], **pool}
    return parse_config({"pools": {"gpu": table}}, Path("bake.toml"))


@pytest.mark.parametrize("itype,ok", [("g4dn.xlarge", True), ("p3.2xlarge", True), ("p4d.24xlarge", True),
                                      ("g5g.xlarge", True), ("gr6.4xlarge", True), ("p6-b200.48xlarge", True),
                                      ("g4ad.xlarge", False), ("inf2.xlarge", False), ("trn1.2xlarge", False),
                                      ("m5.large", False), ("dl1.24xlarge", False), ("g4dn", False)])
def test_nvidia_instance_types(itype, ok):
    assert is_nvidia_instance_type(itype) is ok


def test_gpu_pool_on_a_cpu_instance_type_is_a_config_error():
    with pytest.raises(ConfigError, match=r"pools.gpu: gpu = true needs an NVIDIA GPU instance type.*'m5.large'"):
        _cfg(gpu=True)
    assert _cfg(gpu=False).pools["gpu"].instance_type == "m5.large"  # no GPU: any type
    assert _cfg(gpu=True, instance_type="g4dn.xlarge").pools["gpu"].gpu


def test_gpu_settings_keys_and_defaults():
    s = GpuSettings()
    assert (s.min_driver_version, s.nvidia_smi, s.runtime_path, s.nvidia_ctk) == (
        None, "nvidia-smi", "/usr/bin/nvidia-container-runtime", "nvidia-ctk")  # None: the image's own floor
    assert s.validate_image.startswith("nvidia/cuda:12.4.0-")
    assert s.restart_command is None and s.validate_run is None
    pool = _cfg(gpu=True, instance_type="g5.xlarge",
                gpu_settings={"min_driver_version": 525, "restart_command": "systemctl restart docker"}).pools["gpu"]
    assert pool.gpu_settings.min_driver_version == 525
    with pytest.raises(ConfigError, match="gpu_settings"):
        _cfg(gpu=True, instance_type="g5.xlarge", gpu_settings={"min_driver": 525})
    with pytest.raises(ConfigError, match="validate_image"):
        _cfg(gpu=True, instance_type="g5.xlarge", gpu_settings={"validate_image": "UPPER CASE"})


def test_gpu_steps_come_after_the_runtime_is_up_and_before_pull(tmp_path):
    lock = LockFile(tmp_path / "amis.lock.json")
    gpu_pool = _cfg(gpu=True, instance_type="g4dn.xlarge").pools["gpu"]
    names = [s.name for s in steps_for(gpu_pool, lock)]
    i = names.index("connect")
    assert names[i + 1:i + 6] == ["runtime", "gpu-driver", "gpu-runtime", "gpu-validate", "pull"]
    assert not any(n.startswith("gpu") for n in (s.name for s in steps_for(_cfg().pools["gpu"], lock)))
