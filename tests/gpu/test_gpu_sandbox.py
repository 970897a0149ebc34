"""GPU pools end to end in the sandbox, around the one thing it lacks: a GPU.

What is real: the bake (moto, sshd, the builder's overlays), the edits of the builder's
/etc/docker/daemon.json and /etc/containerd/config.toml (checked in the overlay's upper dir and
loaded by a real dockerd / parsed by the real containerd), the restart of the sandbox's real
dockerd / containerd through the builder, the pulls before and after it, and (in one test) the
real `docker run --runtime=nvidia`, which must fail here.

What is a TEST DOUBLE: ``nvidia-smi``, ``nvidia-container-runtime`` and the validation's
``docker run`` / ``ctr run`` line, shell scripts in a temporary directory under /tmp that the
pool's gpu_settings point at (the builder sees /tmp, which is not an overlay). The host's
/etc/docker and /etc/containerd must stay byte for byte as they were.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from bake import tags
from bake.model.lock import LockFile
from bake_sandbox import runtimes
from bake_sandbox.restart import restart_log

from support.cli import run_bake
from support.node_runtime import k8s_ctr
from support.sandbox_bakes import builder_files_containing, in_builder, leftovers, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("nothing_left", "builder_runtime_configs")]
POOL = "gpu"

DRIVER = "550.54.15"  # at or above CUDA 12.4's floor, 550.54.14
# Every image these tests push carries CUDA 12.4's requirement (as nvidia/cuda:12.4.0 images do,
# abridged to two brands): the default floor is read from the validation image's config.
REQUIRE_CUDA = ("NVIDIA_REQUIRE_CUDA=cuda>=12.4 " + " ".join(
    f"brand={b},driver>={d},driver<{d + 1}" for d in (470, 525, 535) for b in ("tesla", "nvidia")))
HOST_FILES = ["/etc/docker/daemon.json", "/etc/containerd/config.toml"]
SEED_DAEMON_JSON = {"log-driver": "json-file", "log-opts": {"max-size": "10m"},
                    "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "default-runtime": "runc"}

NVIDIA_SMI = """#!/bin/sh
# TEST DOUBLE for nvidia-smi (tests/gpu): answers as a GPU host with this driver would.
case "$*" in
  *--query-gpu=driver_version,name*) printf '%s\\n' {answer};;
  *) echo "NVIDIA-SMI (test double)";;
esac
"""
RUNTIME = """#!/bin/sh
# TEST DOUBLE for nvidia-container-runtime (tests/gpu): the real one is runc plus NVIDIA's hook.
exec runc "$@"
"""
VALIDATE = """#!/bin/sh
# TEST DOUBLE for the validation line `docker run --runtime=nvidia IMAGE nvidia-smi` (tests/gpu),
# which needs a GPU. Records whether the validation image was in the runtime when it ran.
runtime=$1; image=$2; shift 2
if [ "$runtime" = docker ]; then
  docker image inspect "$image" >/dev/null 2>&1 && present=yes || present=no
else
  ctr -n k8s.io images ls -q "name==$image" | grep -q . && present=yes || present=no
fi
echo "$runtime $image present=$present command=$*" >> {log}
echo "NVIDIA-SMI {driver} (validation double)"
"""


def host_files() -> dict[str, bytes | None]:
    out = {p: Path(p).read_bytes() if Path(p).exists() else None for p in HOST_FILES}
    for d in ("/etc/docker", "/etc/containerd"):
        out[d] = "\n".join(sorted(p.name for p in Path(d).iterdir())).encode() if Path(d).exists() else None
    return out


def pool_leftovers(ec2) -> dict[str, list[str]]:
    """support.sandbox_bakes.leftovers, for this module's pool only: other suites may bake at the same time."""
    mine = {}
    for kind, ids in leftovers(ec2).items():
        mine[kind] = [i for i in ids if _pool_of(ec2, kind, i) == POOL]
    return mine


def _pool_of(ec2, kind: str, rid: str) -> str | None:
    if kind == "instances":
        res = ec2.describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"][0]
    elif kind == "security_groups":
        res = ec2.describe_security_groups(GroupIds=[rid])["SecurityGroups"][0]
    else:
        res = ec2.describe_key_pairs(KeyNames=[rid])["KeyPairs"][0]
    return tags.from_aws(res.get("Tags", [])).get(tags.KEY_POOL)


@pytest.fixture
def nothing_left(sandbox, ec2):
    """As the clean_after fixture: no builder, group or key pair of this pool, no registry
    credential on the builder."""
    yield
    assert pool_leftovers(ec2) == {"instances": [], "security_groups": [], "key_pairs": []}
    assert builder_files_containing(sandbox, sandbox.ecr_credentials()[1]) == []


@pytest.fixture
def builder_runtime_configs(sandbox):
    """Each test starts and ends with the builder's runtime configs as the host has them, and
    the host's own files never change."""
    before = host_files()

    def reset() -> None:
        script = ["rm -f /etc/docker/daemon.json.bake-backup /etc/docker/daemon.json.bake-tmp "
                  "/etc/containerd/config.toml.bake-backup /etc/containerd/config.toml.bake-tmp"]
        if before["/etc/docker/daemon.json"] is None:
            script.append("rm -f /etc/docker/daemon.json")
        in_builder(sandbox, "; ".join(script))
        for path in HOST_FILES:
            if before[path] is not None:
                in_builder(sandbox, f"cat > {path}", stdin=before[path].decode())

    reset()
    yield
    reset()
    assert host_files() == before, "a GPU bake changed the host's own runtime configs"


@pytest.fixture
def doubles():
    d = Path(tempfile.mkdtemp(prefix="bake-gpu-doubles-", dir="/tmp"))
    d.chmod(0o755)

    def make(answer: str = f"{DRIVER}, Tesla T4") -> Path:
        for name, text in [("nvidia-smi", NVIDIA_SMI.format(answer=f"'{answer}'")),
                           ("nvidia-container-runtime", RUNTIME),
                           ("validate-run", VALIDATE.format(log=d / "validate.log", driver=DRIVER))]:
            (d / name).write_text(text)
            (d / name).chmod(0o755)
        return d

    yield make
    shutil.rmtree(d, ignore_errors=True)


def gpu_config(sandbox, path: Path, runtime: str, d: Path, images: list[str], **settings) -> Path:
    info = sandbox.info
    restart = f"env BAKE_SANDBOX_DIR={info.state_dir} {sys.executable} -m bake sandbox restart-runtime {runtime}"
    gs = {"nvidia_smi": str(d / "nvidia-smi"), "runtime_path": str(d / "nvidia-container-runtime"),
          "restart_command": restart, "validate_image": images[0],
          "validate_run": f"{d}/validate-run {runtime} {{image}} {{command}}", **settings}
    write_config(path, sandbox, {"gpu": {"images": images, "runtime": runtime, "gpu": True,
                                         "instance_type": "g4dn.xlarge"}})
    with open(path, "a") as f:
        f.write("[pools.gpu.gpu_settings]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings_or(gs)))
    return path


def settings_or(gs: dict) -> list[tuple[str, object]]:
    return [(k, v) for k, v in gs.items() if v is not None]


def fresh_image(sandbox, name: str) -> str:
    """A newly pushed image: the bake's fingerprint is new, so it really launches."""
    repo = f"env/{name}-{uuid.uuid4().hex[:8]}"
    sandbox.push_image(repo, "v1", size_mb=1, env=(REQUIRE_CUDA,))
    return f"{sandbox.info.registry}/{repo}:v1"


def restarts(sandbox) -> list[str]:
    p = restart_log(sandbox.layout)
    return p.read_text().splitlines() if p.exists() else []


def image_in_runtime(sandbox, runtime: str, ref: str) -> bool:
    if runtime == "docker":
        return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0
    return bool(k8s_ctr(sandbox, "images", "ls", "-q", f"name=={ref}").strip())


def check_recorded(ec2, lock_path: Path) -> None:
    entry = LockFile(lock_path).read().pools["gpu"].current
    assert entry.gpu_driver_version == DRIVER
    image = ec2.describe_images(ImageIds=[entry.ami_id])["Images"][0]
    assert tags.from_aws(image["Tags"])[tags.KEY_GPU_DRIVER] == DRIVER


def dockerd_loads(config: Path) -> dict:
    """Start a throwaway dockerd (own socket, data and namespaces) on ``config``; its `docker info`."""
    t = Path(tempfile.mkdtemp(prefix="bake-dockerd-check-"))
    sock = f"unix://{t}/docker.sock"
    argv = ["dockerd", "--config-file", str(config), "--data-root", str(t / "data"), "--exec-root", str(t / "exec"),
            "--pidfile", str(t / "pid"), "-H", sock, "--iptables=false", "--bridge=none",
            "--containerd", runtimes.DOCKER_CONTAINERD_SOCKET, "--containerd-namespace", "bake-gpu-check",
            "--containerd-plugins-namespace", "bake-gpu-check-plugins"]
    proc = subprocess.Popen(argv, stdout=open(t / "log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = subprocess.run(["docker", "-H", sock, "info", "--format", "{{json .}}"], capture_output=True, text=True)
            if r.returncode == 0:
                return json.loads(r.stdout)
            assert proc.poll() is None, f"dockerd refused {config}: {(t / 'log').read_text()[-1500:]}"
            time.sleep(0.2)
        raise AssertionError(f"the throwaway dockerd did not answer: {(t / 'log').read_text()[-1500:]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(t, ignore_errors=True)


@pytest.mark.parametrize("runtime", ["docker", "containerd"])
def test_gpu_bake(sandbox, ec2, tmp_path, doubles, runtime):
    d = doubles()
    pool_image, validate_image = fresh_image(sandbox, "gpu-pool"), fresh_image(sandbox, "gpu-validate")
    cfg = gpu_config(sandbox, tmp_path / "bake.toml", runtime, d, [pool_image], validate_image=validate_image)
    if runtime == "docker":  # the base AMI's own daemon.json, which the bake must keep
        in_builder(sandbox, "mkdir -p /etc/docker && cat > /etc/docker/daemon.json", stdin=json.dumps(SEED_DAEMON_JSON))
    daemon = runtimes.dockerd_daemon(sandbox.layout) if runtime == "docker" else None
    pid_before, restarts_before = daemon.pid() if daemon else None, restarts(sandbox)
    t0 = time.monotonic()
    result = run_bake("build", "--config", str(cfg))
    took = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    check_recorded(ec2, tmp_path / "amis.lock.json")

    # the restart ran, through the builder, before the pull (which then worked on the new daemon)
    new = restarts(sandbox)[len(restarts_before):]
    if daemon:
        assert [line.split()[1:] for line in new] == [[runtime, str(pid_before), str(daemon.pid())]]
    else:  # the node's containerd: stopped before, started by the bake, restarted, stopped again
        [(name, old, started)] = [line.split()[1:] for line in new]
        assert name == "containerd" and old.isdigit() and started.isdigit() and old != started
        assert not sandbox.node_containerd_state()["running"]
    assert image_in_runtime(sandbox, runtime, pool_image)

    # validation ran with the pulled validation image, which then left again (not a pool image)
    log = (d / "validate.log").read_text().splitlines()
    assert log == [f"{runtime} {validate_image} present=yes command=nvidia-smi"]
    assert not image_in_runtime(sandbox, runtime, validate_image)

    upper = Path(sandbox.info.overlay_upper) / "etc"
    if runtime == "docker":
        merged = json.loads((upper / "docker/daemon.json").read_text())
        assert merged["default-runtime"] == "nvidia"
        assert merged["runtimes"]["nvidia"]["path"] == str(d / "nvidia-container-runtime")
        for key in ("log-driver", "log-opts"):
            assert merged[key] == SEED_DAEMON_JSON[key]
        assert merged["runtimes"]["crun"] == SEED_DAEMON_JSON["runtimes"]["crun"]
        assert json.loads((upper / "docker/daemon.json.bake-backup").read_text()) == SEED_DAEMON_JSON
        info = dockerd_loads(upper / "docker/daemon.json")  # the real dockerd accepts it
        assert info["DefaultRuntime"] == "nvidia"
        assert info["Runtimes"]["nvidia"]["path"] == str(d / "nvidia-container-runtime")
        assert "crun" in info["Runtimes"] and info["LoggingDriver"] == "json-file"
    else:
        text = (upper / "containerd/config.toml").read_text()
        original = tomllib.loads(Path("/etc/containerd/config.toml").read_text())
        assert (upper / "containerd/config.toml.bake-backup").read_text() == Path("/etc/containerd/config.toml").read_text()
        dump = subprocess.run(["containerd", "--config", str(upper / "containerd/config.toml"), "config", "dump"],
                              capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr  # the real containerd parses it
        for doc in (tomllib.loads(text), tomllib.loads(dump.stdout)):
            cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
            assert cri["containerd"]["default_runtime_name"] == "nvidia"
            nvidia = cri["containerd"]["runtimes"]["nvidia"]
            assert nvidia["runtime_type"] == "io.containerd.runc.v2"
            assert nvidia["options"]["BinaryName"] == str(d / "nvidia-container-runtime")
            for name, table in original["plugins"].items():  # the host's settings stay
                for key, value in table.items():
                    # the dump adds containerd's defaults: the host's keys must be among them
                    kept = doc["plugins"][name][key]
                    assert kept == value or (isinstance(value, dict) and value.items() <= kept.items())
    print(f"\n{runtime} GPU bake: {took:.1f}s")


@pytest.mark.parametrize("driver, settings, says", [
    # the validation image's own requirement: neither >= 550.54.14 nor of the 470/525/535 branches
    ("390.116, Tesla K80", {}, "390.116 (Tesla K80) does not meet {image}'s NVIDIA_REQUIRE_CUDA: driver >= 550.54.14 "
                               "or a driver of branch 470, 525, 535 (override: gpu_settings.min_driver_version)"),
    # a configured floor wins: the image would accept R535
    ("535.104.05, Tesla T4", {"min_driver_version": "550.54.14"},
     "535.104.05 (Tesla T4) is below the pool's minimum 550.54.14 (gpu_settings.min_driver_version)"),
])
def test_driver_below_the_floor_fails_before_touching_the_runtime(sandbox, tmp_path, doubles, driver, settings, says):
    d = doubles(driver)
    image = fresh_image(sandbox, "gpu-old")
    cfg = gpu_config(sandbox, tmp_path / "bake.toml", "containerd", d, [image], **settings)
    before = restarts(sandbox)
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 1
    assert says.format(image=image) in result.stderr, result.stderr
    assert restarts(sandbox) == before
    assert not (Path(sandbox.info.overlay_upper) / "etc/containerd/config.toml.bake-backup").exists()
    assert not (tmp_path / "amis.lock.json").exists()


def test_no_driver_fails_clearly(sandbox, tmp_path, doubles):
    d = doubles()
    cfg = gpu_config(sandbox, tmp_path / "bake.toml", "docker", d, [fresh_image(sandbox, "gpu-none")],
                     nvidia_smi=str(d / "no-such-nvidia-smi"))
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 1
    assert "no NVIDIA driver answers on the builder" in result.stderr and "not found" in result.stderr
    assert not (tmp_path / "amis.lock.json").exists()


def test_failing_driver_query_fails_clearly(sandbox, tmp_path, doubles):
    d = doubles()
    (d / "nvidia-smi").write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate "
                                  "with the NVIDIA driver.\" >&2\nexit 9\n")
    cfg = gpu_config(sandbox, tmp_path / "bake.toml", "containerd", d, [fresh_image(sandbox, "gpu-broken")])
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 1
    assert "exit code 9" in result.stderr and "couldn't communicate with the NVIDIA driver" in result.stderr


def test_real_docker_validation_fails_without_the_nvidia_runtime(sandbox, tmp_path, doubles):
    """The default validation line against the real dockerd, which (restarted with the host's
    config) knows no nvidia runtime: the bake must fail, naming the command and docker's answer."""
    d = doubles()
    image = fresh_image(sandbox, "gpu-validate-real")
    cfg = gpu_config(sandbox, tmp_path / "bake.toml", "docker", d, [image], validate_run=None)
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 1
    assert "GPU validation failed" in result.stderr and "docker run --rm --runtime=nvidia" in result.stderr
    assert "nvidia" in result.stderr.split("GPU validation failed", 1)[1]
    assert not (tmp_path / "amis.lock.json").exists()


def test_gpu_pool_on_a_cpu_instance_type_fails_at_plan(sandbox, ec2, tmp_path):
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"gpu": {"images": sandbox.info.images[:1], "gpu": True}})
    result = run_bake("plan", "--config", str(cfg))
    assert result.returncode == 2
    assert "gpu = true needs an NVIDIA GPU instance type" in result.stderr and "m5.large" in result.stderr
