"""Plan and build: the library behind ``python -m bake plan`` and ``python -m bake build``.

Planning resolves every selected pool (base AMI, image digests, fingerprint, bake or skip)
before anything is launched, so bad input fails with nothing to clean up. Building runs the
pools that need it concurrently, each through the steps in ``STEPS`` order.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bake import aws, resources
from bake.aws.images import Image, tool_images
from bake.base_ami import baked_base_warning, resolve_base_ami
from bake.cancel import CancelToken
from bake.decision import Action, decide
from bake.disk import DiskPlan, builder_disk
from bake.errors import BakeError, Cancelled, UsageError
from bake.fingerprint import pool_fingerprint
from bake.first_start import first_read
from bake.gpu import DriverFloor, GpuError, floor_from_env
from bake.model.config import BakeConfig, PoolConfig
from bake.model.images import ResolvedImage
from bake.model.lock import AmiRecord, LockFile, PoolLock
from bake.model.refs import parse_reference
from bake.model.times import compact_utc, utc_now
from bake.model.workspace import resolve_region
from bake.plan import PoolPlan
from bake.progress import Reporter
from bake.references import GC_ADVICE, pool_aliases, reports_pinned
from bake.registry import RegistryClient
from bake.rundir import DEFAULT_ROOT as RUNS_ROOT
from bake.rundir import RunDir
from bake.steps.ami import StepCreateAmi, ami_facts
from bake.steps.base import BuildState, Run, Step, run_steps
from bake.steps.cache import StepCache
from bake.steps.connect import StepConnect
from bake.steps.cache_distribute import cache_distribute_steps
from bake.steps.data_volume import (StepMountDataVolume, StepSnapshotDataVolume, snapshot_available, snapshot_facts,
                                    snapshot_with_fingerprint)
from bake.steps.distribute import StepCopyAmi, StepShareAmi
from bake.steps.gpu import gpu_steps
from bake.steps.instance import StepRunInstance
from bake.steps.keep import keep_builder
from bake.steps.keypair import StepKeyPair
from bake.steps.pull import StepNodeShape, StepPull, StepVerify
from bake.steps.runtime import StepRuntimeDown, StepRuntimeUp, StepStopKubelet
from bake.steps.record import StepRecordLock, entry_for, record
from bake.steps.scrub import StepScrub
from bake.steps.security_group import StepSecurityGroup

# Digest lookups are small HEAD/GET requests: more at once than pulls (pull_concurrency).
RESOLVE_CONCURRENCY = 16


def steps_for(pool: PoolConfig, lock: LockFile) -> list[Step]:
    """The whole procedure, in order; each step undoes itself (see bake.steps.base). A
    data-volume pool pulls onto its data volume and snapshots that instead of the builder."""
    data_volume = pool.cache == "data-volume"
    # Bottlerocket prepares its data volume at boot (containerd's root is on it): nothing to mount.
    bottlerocket = pool.os == "bottlerocket"
    steps: list[Step] = [
        StepKeyPair(),
        StepSecurityGroup(),
        StepRunInstance(),
        StepConnect(),
        *([StepMountDataVolume()] if data_volume and not bottlerocket else []),  # the runtime's root, before it starts
        StepRuntimeUp(),  # the runtime as found: started if it is stopped (a fresh AL2023 AMI)
        *([StepStopKubelet()] if bottlerocket else []),  # its image GC must not run beside the pulls
        # GPU pools: driver check, nvidia as the default runtime and its restart, before any pull.
        *(gpu_steps() if pool.gpu else []),
        StepPull(),
        StepNodeShape(),
        StepVerify(),
        StepCache(),
        StepRuntimeDown(),  # stopped again, as found, before the scrub and the snapshot
    ]
    if data_volume:
        return [*steps, StepSnapshotDataVolume(stop_builder=bottlerocket), *cache_distribute_steps(), StepRecordLock(lock)]
    steps += [StepScrub(), StepCreateAmi(), *distribute_steps(), StepRecordLock(lock)]
    return steps


def distribute_steps() -> list[Step]:
    """Copies to the pool's other regions, then sharing (both do nothing for a pool that
    distributes nothing)."""
    return [StepCopyAmi(), StepShareAmi()]


@dataclass
class PoolOutcome:
    pool: str
    action: Action
    ami_id: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Baker:
    config: BakeConfig
    lock: LockFile
    reporter: Reporter
    cancel: CancelToken = field(default_factory=CancelToken)
    session: Any = None
    lock_wait: float = 0.0  # how long to wait for another bake of the same pool
    keep_on_failure: bool = False  # leave a failed bake's builder, group and key pair (bake.steps.keep)
    run_root: Path | None = None  # where run directories go (default: .bake-runs beside the lock)
    run_dir: RunDir | None = None  # this build's, once it has a run id

    def __post_init__(self) -> None:
        self.session = self.session or aws.session(self.config.region)
        self.region = resolve_region(None, self.config.region, lambda: aws.chain_region(self.session), self.config.path)
        self._clients: dict[str, Any] = {}
        self._regions: list[str] | None = None

    def client(self, service: str, region: str | None = None) -> Any:
        # botocore clients are thread-safe; one per service and region serves every pool.
        key = f"{service}@{region or self.region}"
        if key not in self._clients:
            self._clients[key] = aws.client(self.session, service, region or self.region)
        return self._clients[key]

    def ec2_in(self, region: str) -> Any:
        return self.client("ec2", region)

    # --- planning -------------------------------------------------------------------------

    def plan(self, names: list[str] | None = None) -> list[PoolPlan]:
        pools = self.config.select(names)
        for pool in pools:
            if pool.os == "bottlerocket" and pool.gpu:  # before any AWS call: nothing to clean up
                raise UsageError(f"{self.config.path}: pools.{pool.name}.gpu: the GPU steps are written for AL2023's "
                                 "NVIDIA AMIs, not for a Bottlerocket builder (docs/data-volume.md)")
        data = self.lock.read()
        # The resolved images carry the credentials the pulls need, so the client's HTTP
        # sessions close once planning is done.
        with RegistryClient(
            registries=dict(self.config.registries), boto_session=self.session, reporter=self.reporter, cancel=self.cancel
        ) as registry:
            return [self._plan_pool(pool, registry, data.pool(pool.name)) for pool in pools]

    def _plan_pool(self, pool: PoolConfig, registry: RegistryClient, record_: PoolLock) -> PoolPlan:
        self.cancel.check()
        # The base AMI (SSM, EC2) and the digests (registries) are independent round trips.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="base-ami") as ex:
            base_ami = ex.submit(resolve_base_ami, pool.base_ami, pool.name, self.client)
            try:
                images = registry.resolve_all([parse_reference(r) for r in pool.images], concurrency=RESOLVE_CONCURRENCY)
            except BaseException:
                base_ami.result()  # a bad base AMI is reported first, as when resolved first
                raise
            base_image = base_ami.result()
        base = base_image["ImageId"]
        refs = [i.ref for i in images]
        regional = pool.ecr_regional_aliases and any(r.ecr for r in refs)
        aliases = pool_aliases(refs, pool.aliases, regional, self.regions() if regional else [])
        arch = Image(base_image).platform_arch
        fp = pool_fingerprint(pool, base, [(i.ref.original, i.digest) for i in images], aliases, arch=arch)
        # Compressed sizes from the manifests, for every pool: plan shows them, a bake also sizes
        # the builder's disk and records their total. One manifest GET (two for an index) each.
        sizes = registry.compressed_sizes(images, arch, concurrency=RESOLVE_CONCURRENCY)
        warning = baked_base_warning(pool, base, base_image)
        region_bases = self._region_base_amis(pool, base, arch) if pool.cache == "data-volume" else {}
        plan = self._decide(PoolPlan(
            pool, self.region, base, tuple(images), fp, "bake", "", aliases=aliases,
            notes=tuple(_gc_notes(pool, record_)), image_sizes={i.ref.original: n for i, n in zip(images, sizes)},
            warnings=(warning,) if warning else (), base_image=base_image, lock_record=record_,
            region_base_amis=region_bases,
        ), record_)
        if plan.action == "bake":
            plan = replace(plan, disk=_builder_disk(pool, base_image, list(plan.image_sizes.values())),
                           gpu_floor=gpu_floor(pool, registry, images, arch) if pool.gpu else None)
        # What the next node reads: the AMI this plan keeps, else (a bake) the current one's figures.
        kept = plan.existing if plan.existing and plan.existing.cache_bytes is not None else record_.current
        return replace(plan, first_read=first_read(pool, kept))

    def _region_base_amis(self, pool: PoolConfig, base: str, arch: str) -> dict[str, str]:
        """A data-volume pool's stock AMI in each of its copy regions: its base_ami parameter read
        there (EKS publishes the same parameter in every region, each naming that region's AMI),
        of the architecture the cache was baked for."""
        out: dict[str, str] = {}
        for region in pool.distribute.copy_regions(self.region):
            try:
                image = resolve_base_ami(pool.base_ami, pool.name, lambda service, r=region: self.client(service, r))
            except UsageError as e:
                raise UsageError(f"{e} in {region} ([pools.{pool.name}.distribute] regions)") from None
            if (found := Image(image).platform_arch) != arch:
                raise UsageError(f"pool {pool.name}: base AMI {image['ImageId']} in {region} ({pool.base_ami}) is {found}, "
                                 f"not {arch} as {base} in {self.region}, which the cache was baked on")
            out[region] = image["ImageId"]
        return out

    def regions(self) -> list[str]:
        """Every region of the partition, opted in or not (as `aws ec2 describe-regions --all-regions`)."""
        if self._regions is None:
            found = self.client("ec2").describe_regions(AllRegions=True)["Regions"]
            self._regions = sorted(r["RegionName"] for r in found)
        return self._regions

    def _decide(self, plan: PoolPlan, record_: PoolLock) -> PoolPlan:
        """``plan`` with the decision ``decide`` makes on what AWS says now about the lock's AMI
        and the fingerprint tag, and on which distribute regions the lock's entry has no copy in."""
        ec2 = self.client("ec2")
        current = record_.current
        have = (current.copies or {}) if current else {}
        # A data-volume pool's cache is a snapshot (the lock's ami_id names it): looked up as one.
        available, by_fingerprint = ((snapshot_available, snapshot_with_fingerprint) if plan.pool.cache == "data-volume"
                                     else (resources.image_available, find_by_fingerprint))
        d = decide(
            plan.pool.name, plan.fingerprint, self.region, record_,
            lock_ami_available=lambda: current is not None and available(ec2, current.ami_id),
            ami_with_fingerprint=lambda: by_fingerprint(ec2, plan.pool.name, plan.fingerprint),
            missing_copies=[r for r in plan.pool.distribute.copy_regions(self.region) if r not in have],
        )
        existing = AmiRecord(d.ami_id, copies=dict(d.copies)) if d.ami_id else None
        if existing and current and d.action in ("skip", "copy"):
            # The AMI kept is the current entry's: so are its cache figures.
            existing = replace(existing, cache_bytes=current.cache_bytes, snapshot_ids=list(current.snapshot_ids),
                               snapshot_gib=current.snapshot_gib, cache_snapshot_id=current.cache_snapshot_id,
                               data_device=current.data_device, base_amis=dict(current.base_amis or {}))
        return replace(plan, action=d.action, reason=d.reason, existing=existing)

    # --- building -------------------------------------------------------------------------

    def build(self, names: list[str] | None = None, parallel: int = 4) -> list[PoolOutcome]:
        plans = self.plan(names)  # any bad input fails here, before anything is launched
        # The run's time, carried as it is (resource tags) and in its id (sweep and the run directory).
        at = utc_now().replace(microsecond=0)
        run_id = compact_utc(at) + "-" + secrets.token_hex(3)
        self.run_dir = RunDir((self.run_root or self.lock.path.parent / RUNS_ROOT) / run_id)
        run = Run(run_id, at, self.reporter, self.cancel, self.ec2_in, self.run_dir, self.keep_on_failure)
        outcomes: dict[str, PoolOutcome] = {}
        for p in plans:
            for warning in p.warnings:
                self.reporter.emit("warn", warning, pool=p.pool.name, step="plan")
            if p.action in ("skip", "pinned"):
                self.reporter.emit("pool.skip", f"skipped: {p.reason}", pool=p.pool.name, status="skipped",
                                   data={"ami_id": p.ami_id, "action": p.action})
                outcomes[p.pool.name] = PoolOutcome(p.pool.name, p.action, p.ami_id)
        todo = [p for p in plans if p.action in ("bake", "reuse", "copy")]
        if todo:
            workers = max(1, min(parallel, len(todo)))
            with self.run_dir.captured("paramiko"), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bake") as ex:
                futures = {ex.submit(self._build_pool, p, run): p for p in todo}
                pending = set(futures)
                while pending:
                    # short waits so the main thread stays free to take SIGINT/SIGTERM
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for f in done:
                        outcomes[futures[f].pool.name] = f.result()
        self.cancel.check()
        return [outcomes[p.pool.name] for p in plans]

    def _build_pool(self, plan: PoolPlan, run: Run) -> PoolOutcome:
        name = plan.pool.name
        started = time.monotonic()
        mutex = FileLock(str(self.lock.path.parent / f".{self.lock.path.name}.{name}.bake"))
        try:
            self._acquire(mutex)
        except Timeout:
            msg = (f"another bake of pool {name} is running (it holds {mutex.lock_file}); "
                   "wait for it, or pass --wait SECONDS")
            self.reporter.emit("pool.fail", msg, pool=name, status="failed")
            return PoolOutcome(name, plan.action, error=msg)
        try:
            # Another process may have finished this pool since it was planned: it recorded it in
            # the lock before releasing the pool's mutex. An unchanged record keeps the decision.
            if (record_ := self.lock.read().pool(name)) != plan.lock_record:
                plan = self._decide(plan, record_)
            if plan.action in ("skip", "pinned"):
                self.reporter.emit("pool.skip", f"skipped: {plan.reason}", pool=name, status="skipped")
                return PoolOutcome(name, plan.action, plan.ami_id, seconds=time.monotonic() - started)
            if plan.action == "reuse" and plan.existing:
                # The lock entry keeps the AMI's cache figures: AWS's on a reuse (the lock's on a copy).
                facts = (snapshot_facts if plan.pool.cache == "data-volume" else ami_facts)(
                    self.client("ec2"), plan.existing.ami_id or "")
                plan = replace(plan, existing=replace(plan.existing, **facts._asdict()))
            if plan.action == "copy" or (plan.action == "reuse" and (plan.pool.distribute.regions or plan.pool.distribute.shared)):
                return self._distribute(plan, run, started)
            if plan.action == "reuse" and plan.existing:
                record(self.lock, name, entry_for(plan, plan.existing))
                self.reporter.emit("pool.done", f"recorded existing {plan.ami_id}: {plan.reason}", pool=name,
                                   status="done", data={"ami_id": plan.ami_id})
                return PoolOutcome(name, "reuse", plan.ami_id, seconds=time.monotonic() - started)
            return self._bake(plan, run, started)
        finally:
            mutex.release()

    def _acquire(self, mutex: FileLock) -> None:
        """Take the pool's bake lock, waiting up to ``lock_wait`` s, and noticing a cancel
        while waiting (one long acquire would hold a SIGINT until the other bake finished)."""
        deadline = time.monotonic() + self.lock_wait
        while True:
            self.cancel.check()
            try:
                mutex.acquire(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
                return
            except Timeout:
                if time.monotonic() >= deadline:
                    raise

    @staticmethod
    def _state(plan: PoolPlan, run: Run) -> BuildState:
        # An AMI that exists (a copy or a reuse) starts its record from what the plan knows of
        # it; the steps fill in the rest (a bake, all of it).
        return BuildState(plan, run, record=deepcopy(plan.existing) if plan.existing else AmiRecord())

    def _bake(self, plan: PoolPlan, run: Run, started: float) -> PoolOutcome:
        st = self._state(plan, run)
        self.reporter.emit("pool.start", f"baking {len(plan.images)} image(s) on {plan.base_ami}: {plan.reason}",
                           pool=plan.pool.name, status="started", data={"run_id": run.id})
        return self._run(steps_for(plan.pool, self.lock), st, started, "bake")

    def _distribute(self, plan: PoolPlan, run: Run, started: float) -> PoolOutcome:
        """An AMI that exists (a copy or a reuse): only its missing copies, sharing and the lock."""
        st = self._state(plan, run)
        self.reporter.emit("pool.start", f"distributing {plan.ami_id}: {plan.reason}",
                           pool=plan.pool.name, status="started", data={"run_id": run.id})
        spread = cache_distribute_steps() if plan.pool.cache == "data-volume" else distribute_steps()
        return self._run([*spread, StepRecordLock(self.lock)], st, started, plan.action)

    def _run(self, steps: list[Step], st: BuildState, started: float, action: Action) -> PoolOutcome:
        name = st.plan.pool.name
        try:
            run_steps(steps, st, on_failure=keep_builder)
        except Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - BakeError, or an AWS error the retries did not absorb
            msg = str(e) if isinstance(e, BakeError) else (aws.describe_error(e) or f"{type(e).__name__}: {e}")
            if st.cleanup_errors and "cleanup left" not in msg:
                msg += f" (and cleanup failed: {'; '.join(st.cleanup_errors)})"
            if st.kept:
                msg += f" (builder {st.instance_id} kept: `python -m bake sweep --yes` removes it)"
            self.reporter.emit("pool.fail", f"failed: {msg}", pool=name, status="failed")
            return PoolOutcome(name, action, error=msg, seconds=time.monotonic() - started)
        seconds = time.monotonic() - started
        done = "baked" if action == "bake" else "distributed"
        ami, copies = st.record.ami_id, st.record.copies
        self.reporter.emit("pool.done", f"{done} {ami} in {seconds:.0f}s", pool=name, status="done",
                           data={"ami_id": ami, "copies": copies, "seconds": round(seconds, 1)})
        return PoolOutcome(name, action, ami, seconds=seconds)


def gpu_floor(pool: PoolConfig, registry: RegistryClient, images: list[ResolvedImage], arch: str) -> DriverFloor:
    """The drivers a GPU pool's builder must have: the configured minimum, else what the
    validation image's own NVIDIA_REQUIRE_CUDA accepts (read from its config in its registry,
    before anything is launched)."""
    s = pool.gpu_settings
    if s.min_driver_version is not None:
        return DriverFloor.configured(s.min_driver_version)
    image = next((i for i in images if i.ref.original == s.validate_image), None)
    image = image or registry.resolve(parse_reference(s.validate_image))
    env = registry.image_config(image, arch).get("config", {}).get("Env") or []
    try:
        return floor_from_env(env, s.validate_image)
    except GpuError as e:
        raise GpuError(f"pool {pool.name}: {e}") from None


def _builder_disk(pool: PoolConfig, base_image: dict[str, Any], sizes: list[int]) -> DiskPlan | None:
    """The builder's disk from the compressed sizes when the pool does not set root_volume_size;
    a data-volume pool's data volume from them alone (its root stays the stock one)."""
    if pool.cache == "data-volume":
        return builder_disk(0, sizes, volume="data")
    base_gib = Image(base_image).root_volume_gib
    return builder_disk(base_gib, sizes) if pool.root_volume_size is None and base_gib is not None else None


def find_by_fingerprint(ec2: Any, pool: str, fp: str) -> str | None:
    """The pool's newest available AMI tagged with the fingerprint (a lost lock is rebuilt from it)."""
    found = tool_images(ec2, pool=pool, fingerprint=fp, available=True)
    return found[0].id if found else None


def _gc_notes(pool: PoolConfig, record_: PoolLock) -> list[str]:
    """Whether the kubelet's image GC may remove this pool's cache, as far as the lock knows."""
    if pool.runtime != "containerd":
        return []
    seen = record_.current.runtime_version if record_.current else None
    if not seen:
        return ["the kubelet's image GC spares cached images only where containerd reports them pinned (1.6.22+, 1.7.3+, 2.x); "
                "the bake checks the builder's containerd and says"]
    name, _, version = seen.partition(" ")
    if reports_pinned(name, version):
        return []
    return [f"the current AMI's {seen} does not report pinned images: {GC_ADVICE}"]
