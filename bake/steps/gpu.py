"""GPU pools (``gpu = true``): the procedure's GPU part, after connect and before the pulls.

1. ``StepGpuDriver``: ``nvidia-smi`` must answer with a driver the plan's floor accepts
   (``st.plan.gpu_floor``: the configured minimum, else the validation image's NVIDIA_REQUIRE_CUDA;
   docs/gpu.md); its version goes into the AMI's tags and
   the lock (``st.record.gpu_driver_version``).
2. ``StepGpuRuntime``: NVIDIA's runtime becomes the runtime's default, in the file and the
   format the runtime's generation owns (``bake.runtimes``: Docker's daemon.json; containerd's
   config.toml, version 2 or 3, through nvidia-ctk when the AMI has it), then the runtime
   restarts. Before the pulls: a daemon restart never interrupts one.
3. ``StepGpuValidate``: the procedure's check, ``nvidia-smi`` inside a CUDA image through the
   runtime; the validation image is removed again unless the pool caches it.

No step undoes its work: everything happens on the builder, and a failed bake terminates the
builder (StepRunInstance's undo); a successful one is meant to keep it in the AMI.
"""

from __future__ import annotations

import shlex
import threading

from bake import gpu
from bake.gpu import GpuError
from bake.model.images import ResolvedImage
from bake.model.refs import parse_reference
from bake.ssh import UnexpectedExit, sudo
from bake.steps.base import BuildState
from bake.steps.pull import pull_one

BACKUP_SUFFIX = ".bake-backup"  # the file as the base AMI had it, kept next to it on the AMI
ABSENT = 3  # read_file's exit code for "no such file"
RESTART_TIMEOUT = 300
READY_TIMEOUT = 120



def read_file(st: BuildState, path: str) -> str | None:
    """The builder's file through sudo; None when it does not exist."""
    q = shlex.quote(path)
    res = st.conn.run(sudo(f"[ -e {q} ] || exit {ABSENT}; cat {q}"), warn=True, timeout=60, shown=f"cat {path}")
    if res.exited == ABSENT:
        return None
    if not res.ok:
        raise GpuError(f"cannot read {path} on the builder (exit {res.exited}): {res.tail(400)}")
    return res.stdout


def write_file(st: BuildState, path: str, text: str) -> None:
    """Replace the builder's file through sudo tee, keeping the base AMI's copy as PATH.bake-backup."""
    q, backup, tmp = shlex.quote(path), shlex.quote(path + BACKUP_SUFFIX), shlex.quote(path + ".bake-tmp")
    script = (f"set -e; mkdir -p \"$(dirname {q})\"; "
              f"if [ -e {q} ] && [ ! -e {backup} ]; then cp -p {q} {backup}; fi; "
              f"tee {tmp} >/dev/null; chmod 644 {tmp}; mv -f {tmp} {q}")
    st.conn.run(sudo(script), stdin=text, timeout=60, shown=f"sudo tee {path}")


class StepGpuDriver:
    name = "gpu-driver"
    title = "checking the NVIDIA driver"

    def run(self, st: BuildState) -> None:
        s, floor = st.plan.pool.gpu_settings, st.plan.gpu_floor
        res = st.conn.run(f"{shlex.quote(s.nvidia_smi)} --query-gpu=driver_version,name --format=csv,noheader",
                          warn=True, timeout=120)
        what = f"pool {st.plan.pool.name}: no NVIDIA driver answers on the builder ({st.plan.pool.instance_type})"
        if res.exited == 127:
            raise GpuError(f"{what}: {s.nvidia_smi} not found; a GPU pool needs a base AMI with the NVIDIA "
                           f"driver ({floor.describe()}; e.g. the EKS accelerated AMI)")
        if not res.ok:
            raise GpuError(f"{what}: {s.nvidia_smi} failed with exit code {res.exited}: {res.tail(400)}")
        try:
            gpus = gpu.parse_query(res.stdout)
            st.record.gpu_driver_version = gpu.check_driver(gpus, floor)
        except GpuError as e:
            raise GpuError(f"pool {st.plan.pool.name}: {e}") from None
        st.emit("step", f"NVIDIA driver {st.record.gpu_driver_version} on {gpu.summary(gpus)} "
                        f"({floor.describe()}: {floor.source})", step=self.name, data={"driver": st.record.gpu_driver_version})

    def cleanup(self, st: BuildState) -> None:
        pass  # read-only


class StepGpuRuntime:
    name = "gpu-runtime"
    title = "making NVIDIA the container runtime's default"

    def run(self, st: BuildState) -> None:
        s, runtime = st.plan.pool.gpu_settings, st.plan.pool.runtime
        res = st.conn.run(f"test -x {shlex.quote(s.runtime_path)}", warn=True, timeout=60)
        if not res.ok:
            raise GpuError(f"pool {st.plan.pool.name}: the NVIDIA container runtime {s.runtime_path} is not on the "
                           "builder (gpu_settings.runtime_path); install nvidia-container-toolkit on the base AMI")
        rt = st.container_runtime()
        self._configure(st, rt)
        restart = s.restart_command or rt.restart_command()
        st.emit("step", f"restarting {runtime}: {restart}", step=self.name)
        st.conn.run(sudo(restart), timeout=RESTART_TIMEOUT, shown=restart)
        try:
            # containerd: until its CRI answers (it answers ctr a moment before the CRI serves,
            # and the pulls' naming talks CRI); docker: until `docker version` answers.
            rt.await_ready(st.conn, READY_TIMEOUT)
        except UnexpectedExit as e:
            raise GpuError(f"pool {st.plan.pool.name}: {runtime} did not serve within {READY_TIMEOUT}s after "
                           f"`{restart}`: {e.result.tail(300)}") from None
        st.emit("step", f"{runtime} restarted with nvidia as its default runtime", step=self.name)

    def _configure(self, st: BuildState, rt) -> None:  # noqa: ANN001 - a bake.runtimes.Runtime
        path, ctk = rt.gpu_config_path, st.plan.pool.gpu_settings.nvidia_ctk
        if rt.nvidia_ctk_runtime and ctk and st.conn.run(f"command -v {shlex.quote(ctk)}", warn=True, timeout=60).ok:
            q, backup = shlex.quote(path), shlex.quote(path + BACKUP_SUFFIX)
            configure = f"{shlex.quote(ctk)} runtime configure --runtime={rt.nvidia_ctk_runtime} --set-as-default"
            st.conn.run(sudo(f"if [ -e {q} ] && [ ! -e {backup} ]; then cp -p {q} {backup}; fi; {configure}"),
                        timeout=120, shown=configure)
            st.emit("step", f"configured {rt.name} with nvidia-ctk", step=self.name)
        else:
            write_file(st, path, rt.merge_gpu_config(read_file(st, path), st.plan.pool.gpu_settings.runtime_path))
        self._check(st, path, rt.gpu_default)

    def _check(self, st: BuildState, path: str, default_of) -> None:  # noqa: ANN001
        """Read the file back: what the daemon will read must name nvidia as its default."""
        text = read_file(st, path) or ""
        try:
            default, binary = default_of(text)
        except Exception as e:  # noqa: BLE001 - a file we cannot parse back is a failed edit
            raise GpuError(f"pool {st.plan.pool.name}: {path} does not parse after the edit: {e}") from None
        if default != gpu.NVIDIA_RUNTIME or not binary:
            raise GpuError(f"pool {st.plan.pool.name}: {path} names {default!r} as the default runtime after the edit")
        st.emit("step", f"{path}: default runtime nvidia ({binary})", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # on the builder only: a failed bake terminates it, a good one keeps this in the AMI


class StepGpuValidate:
    name = "gpu-validate"
    title = "validating the GPU through the container runtime"

    def run(self, st: BuildState) -> None:
        s, runtime = st.plan.pool.gpu_settings, st.container_runtime()
        cached = next((i for i in st.plan.images if i.ref.original == s.validate_image), None)
        # Not one of the pool's images: pulled anonymously (a public CUDA image) and not resolved at plan time.
        image = cached or ResolvedImage(parse_reference(s.validate_image), "", None)
        pull_one(st, runtime, image, threading.Event(), cached=cached is not None)
        ref = runtime.cli_name(image)
        command = " ".join(shlex.quote(a) for a in shlex.split(s.validate_command))
        line = (s.validate_run or runtime.gpu_validate).format(
            image=shlex.quote(ref), command=command, runtime_path=shlex.quote(s.runtime_path),
            name=shlex.quote(f"bake-gpu-validate-{st.run.id}"),
        )
        try:
            res = st.conn.run(sudo(line), warn=True, timeout=600, shown=line)
            if not res.ok:
                raise GpuError(f"pool {st.plan.pool.name}: GPU validation failed: `{line}` exited {res.exited}: "
                               f"{res.tail(600)}")
            first = next((x.strip() for x in res.stdout.splitlines() if x.strip()), "")
            st.emit("step", f"GPU validation passed: {first[:200]}", step=self.name)
        finally:
            if cached is None:
                self._remove(st, runtime, ref)

    def _remove(self, st: BuildState, runtime, ref: str) -> None:  # noqa: ANN001 - a bake.runtimes.Runtime
        """The validation image is not what the pool caches: it leaves again (the lock and the
        AMI's tags list exactly the pool's images)."""
        cmd = runtime.remove_command(ref)
        res = st.conn.run(sudo(cmd), warn=True, timeout=120, shown=cmd)
        if not res.ok:
            st.emit("warn", f"could not remove the validation image {ref}: {res.tail(300)}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # a failed bake terminates the builder with whatever it pulled


def gpu_steps() -> list:
    return [StepGpuDriver(), StepGpuRuntime(), StepGpuValidate()]
