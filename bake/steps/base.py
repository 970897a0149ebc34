"""Steps, their shared state, and the runner that guarantees every undo runs.

``run_steps`` registers a step's cleanup *before* its ``run``: a step that fails half-way,
or is interrupted, is still undone. Cleanups run last-in first-out on success, failure and
cancel alike, never check the cancel token, and record (not raise) their own failures, so
one failed cleanup never skips the others.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bake import aws
from bake.cancel import CancelToken
from bake.errors import BakeError
from bake.model.lock import AmiRecord, now_iso
from bake.plan import PoolPlan
from bake.polling import WaitStats
from bake.progress import Reporter


@dataclass(frozen=True)
class Run:
    """One ``bake build``, shared by every pool it builds: its id and start, how it reports and
    is cancelled, its AWS clients and where its output goes."""

    id: str
    started_at: datetime  # UTC, whole seconds: the id's prefix, and the resources' bake:created-at
    reporter: Reporter
    cancel: CancelToken
    ec2_in: Callable[[str], Any]  # a region's EC2 client
    dir: Any = None  # bake.rundir.RunDir: remote output, and what --keep-on-failure leaves
    keep_on_failure: bool = False

    @property
    def created_at(self) -> str:
        """The run's start as the resources' bake:created-at tag says it."""
        return now_iso(self.started_at)


@dataclass
class BuildState:
    """One pool's build: the plan it carries out (never changed), the run it is part of, and
    what the steps create, each id recorded as soon as AWS returns it. What the lock entry will
    record of the AMI is gathered in ``record`` (bake.steps.record.entry_for)."""

    plan: PoolPlan
    run: Run
    record: AmiRecord = field(default_factory=AmiRecord)
    key_name: str | None = None
    private_key: Any = None  # paramiko.PKey, in memory only
    private_key_pem: str | None = None  # kept in memory only with --keep-on-failure
    security_group_id: str | None = None
    instance_id: str | None = None
    root_device_name: str | None = None  # the builder's root device, as the base AMI names it
    conn: Any = None  # bake.ssh.Connection
    host_key_check: Any = None  # bake.ssh.HostKeyCheck: the host key it accepted
    ssh_address: tuple[str, int] | None = None
    proxy_argv: list[str] | None = None
    kept: bool = False  # the builder, group and key pair were left for debugging
    ami_name: str | None = None
    # The builder's container runtime (bake.runtimes, its generation known once it serves), and
    # how the bake found it: "running" / "stopped", enabled or not, and what the bake changed.
    runtime: Any = None
    runtime_found: str | None = None
    runtime_enabled: bool = False
    runtime_started: bool = False
    runtime_restored: bool = False
    # The copies this run started (the only ones its undo removes); record.copies names every
    # one the lock entry will name.
    started_copies: dict[str, str] = field(default_factory=dict)
    # A cache = "data-volume" pool (bake/steps/data_volume.py): the volume's id and whether it is
    # mounted on the builder (its size is the plan's, its snapshot the record's).
    data_volume_id: str | None = None
    data_mounted: bool = False
    succeeded: bool = False
    cleanup_errors: list[str] = field(default_factory=list)

    @property
    def ec2(self) -> Any:
        """The EC2 client of the plan's region."""
        return self.run.ec2_in(self.plan.region)

    def container_runtime(self) -> Any:
        """The runtime the runtime step found, or the pool's runtime family before it ran."""
        from bake.runtimes import runtime_for

        return self.runtime or runtime_for(self.plan.pool.runtime, self.plan.pool.os)

    def emit(self, kind: str, message: str, **kw: Any) -> None:
        self.run.reporter.emit(kind, message, pool=self.plan.pool.name, **kw)

    def waited(self, stats: WaitStats, step: str) -> None:
        """A ``wait`` event: how long the wait took and how many polls it made (--json)."""
        self.emit("wait", f"{stats.name} after {stats.seconds:.1f}s ({stats.calls} poll(s))", step=step, data=stats.as_data())


class Step(Protocol):
    name: str
    title: str

    def run(self, st: BuildState) -> None: ...
    def cleanup(self, st: BuildState) -> None: ...


# What ``build --keep-on-failure`` leaves after a failure: the steps whose undo is skipped.
KEPT_STEPS = frozenset({"key-pair", "security-group", "instance"})


def _undo(step: Step, st: BuildState) -> None:
    if st.kept and step.name in KEPT_STEPS:
        return
    handle = st.run.cancel.cleaning(f"{st.plan.pool.name}: {step.title} (undo)")
    try:
        step.cleanup(st)
    except Exception as e:  # noqa: BLE001 - recorded and reported, never swallowed silently
        msg = f"{step.name}: {aws.describe_error(e) or e}"
        st.cleanup_errors.append(msg)
        st.emit("warn", f"cleanup failed: {msg}", step=step.name, status="failed")
    finally:
        st.run.cancel.cleaned(handle)


def run_steps(steps: list[Step], st: BuildState, on_failure: Callable[[BuildState, Exception], None] | None = None) -> None:
    """Run ``steps``; ``on_failure`` runs after a step failed (not on an interrupt), before any
    undo: it may set ``st.kept`` to leave the builder, group and key pair for debugging."""
    with ExitStack() as stack:
        for step in steps:
            st.run.cancel.check()
            stack.callback(_undo, step, st)
            st.emit("step", step.title, step=step.name, status="started")
            try:
                step.run(st)
            except Exception as e:
                if on_failure is not None:
                    on_failure(st, e)
                raise
    if st.cleanup_errors:
        raise BakeError(
            f"pool {st.plan.pool.name}: cleanup left resources behind ({'; '.join(st.cleanup_errors)}); "
            f"`python -m bake sweep` finds them by the tag bake:run-id={st.run.id}"
        )
