"""The fault matrix's helpers: a bake run as a subprocess whose JSON event stream the test reads
live, and the "nothing left behind" check. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bake import tags
from faultproxy import FaultProxy
from support.cli import ROOT
from support.sandbox_bakes import RUNNING, leftovers

# A lock file the failed runs must leave byte for byte as it was.
LOCK_BEFORE = json.dumps({"version": 1, "pools": {"other": {"current": {
    "ami_id": "ami-0123456789abcdef0", "region": "us-east-1", "fingerprint": "sha256:" + "0" * 64,
    "base_ami": "ami-ekslinux", "images": [], "built_at": "2026-01-01T00:00:00Z", "runtime": "containerd"}}}},
    indent=2) + "\n"


def ssh_fingerprint(public_key_line: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


Inventory = dict[tuple[str, str], frozenset[str]]  # (region, kind) -> ids


# The snapshots a bake can make, found without their tags too: CreateImage's, by the description
# EC2 writes on them (AWS and moto alike), and anything carrying the tool's tag (a copy's snapshots
# are tagged at creation). Listing every snapshot instead costs 12 s per inventory here: moto
# holds some 1,350 snapshots of its preloaded AMIs in each of its 38 regions, and a filter is
# applied before the answer is serialized, which is the slow part.
SNAPSHOT_FILTERS = (
    [{"Name": "description", "Values": ["Created by CreateImage(*"]}],
    [{"Name": "tag-key", "Values": [tags.KEY_TOOL]}],
)


class Account:
    """The sandbox's AWS seen directly (not through the fault proxy, whose call log the tests read):
    what exists in every region, whoever made it and whatever it is tagged."""

    def __init__(self, endpoint: str, env: dict[str, str]):
        import boto3

        self.session = boto3.Session(aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
                                     aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
                                     aws_session_token=env.get("AWS_SESSION_TOKEN"))
        self.endpoint = endpoint
        self.regions = sorted(r["RegionName"] for r in self.ec2("us-east-1").describe_regions()["Regions"])

    def ec2(self, region: str):  # noqa: ANN201
        return self.session.client("ec2", region_name=region, endpoint_url=self.endpoint)

    def _region(self, region: str) -> Inventory:
        ec2 = self.ec2(region)
        live = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": RUNNING}])
        images = ec2.describe_images(Owners=["self"])["Images"]
        return {
            (region, "instances"): frozenset(i["InstanceId"] for r in live["Reservations"] for i in r["Instances"]),
            (region, "security_groups"): frozenset(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
            (region, "key_pairs"): frozenset(k.get("KeyPairId") or k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
            (region, "snapshots"): frozenset(s["SnapshotId"] for f in SNAPSHOT_FILTERS
                                             for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=f)["Snapshots"]),
            # Snapshots an AMI maps: what a successful bake leaves, with its AMI.
            (region, "image_snapshots"): frozenset(b["Ebs"]["SnapshotId"] for i in images
                                                   for b in i.get("BlockDeviceMappings", []) if b.get("Ebs", {}).get("SnapshotId")),
        }

    def inventory(self) -> Inventory:
        from concurrent.futures import ThreadPoolExecutor

        out: Inventory = {}
        with ThreadPoolExecutor(8) as pool:
            for part in pool.map(self._region, self.regions):
                out.update(part)
        return out


def new_since(before: Inventory, after: Inventory) -> dict[str, list[str]]:
    """What exists now and did not before, by region and kind, tags or not: live instances,
    security groups, key pairs, and snapshots (SNAPSHOT_FILTERS) that no AMI maps (an AMI's own
    snapshots leave with it; a successful bake's AMI is checked by its run's tags)."""
    found: dict[str, list[str]] = {}
    for (region, kind), ids in sorted(after.items()):
        if kind == "image_snapshots":
            continue
        new = ids - before.get((region, kind), frozenset())
        if kind == "snapshots":
            new -= after[(region, "image_snapshots")]
        if new:
            found[f"{region} {kind}"] = sorted(new)
    return found


class Baseline:
    """What the account held before a test's first bake started (its runs share it: taking it
    costs a second or two, which must not come between two bakes meant to overlap)."""

    def __init__(self, proxy: FaultProxy, env: dict[str, str]):
        host, port = proxy.upstream
        self.account = Account(f"http://{host}:{port}", env)
        self.before = self.account.inventory()

    def left(self) -> dict[str, list[str]]:
        return new_since(self.before, self.account.inventory())


class BakeRun:
    """``python -m bake build --json`` in its own session; events are read as they come.
    ``baseline``: the account before the test's first run (taken here when not given), for the
    "nothing left" check."""

    def __init__(self, args: list[str], env: dict[str, str], timeout: float, proxy: FaultProxy,
                 baseline: Baseline | None = None):
        self.timeout = timeout
        self.proxy = proxy  # the run's AWS calls go through it
        self.baseline = baseline or Baseline(proxy, env)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bake", "build", "--json", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.events: list[dict] = []
        self.stderr_lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"kind": "garbage", "message": line}
            self.events.append(ev)
            self._q.put(ev)
        self._q.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr_lines.append(line)

    @property
    def stdout(self) -> str:
        return "\n".join(json.dumps(e) for e in self.events)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_event(self, pred: Callable[[dict], bool], timeout: float = 60) -> dict:
        for ev in self.events:
            if pred(ev):
                return ev
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no such event within {timeout}s; events: {self.events}\nstderr: {self.stderr}")
            try:
                ev = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                pytest.fail(f"bake exited ({self.proc.wait()}) before the event; events: {self.events}\n"
                            f"stderr: {self.stderr}")
            if pred(ev):
                return ev

    def wait_stderr(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} not on stderr within {timeout}s: {self.stderr}")
            time.sleep(0.05)

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def finish(self) -> int:
        left = max(1.0, self.timeout - (time.monotonic() - self.started))
        try:
            code = self.proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"bake did not finish within {self.timeout}s; stderr: {self.stderr}")
        for t in self._threads:
            t.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own child's session, by its id
            self.proc.wait(timeout=10)

    @property
    def run_id(self) -> str | None:
        return next((e["data"]["run_id"] for e in self.events if e.get("kind") == "pool.start"), None)


def amis_of_run(ec2, run_id: str | None) -> list[str]:
    if not run_id:
        return []
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}])
    return [i["ImageId"] for i in images["Images"]]


def leftovers_of(ec2, run_id: str) -> dict[str, list[str]]:
    """support.sandbox_bakes.leftovers, narrowed to one run: other bakes may share the sandbox meanwhile."""
    run = [{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}]
    inst = ec2.describe_instances(Filters=run + [{"Name": "instance-state-name", "Values": RUNNING}])
    return {
        "instances": [i["InstanceId"] for r in inst["Reservations"] for i in r["Instances"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=run)["SecurityGroups"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=run)["KeyPairs"]],
    }


CREATING = ("ImportKeyPair", "CreateKeyPair", "CreateSecurityGroup", "RunInstances", "CreateImage")


def assert_nothing_left(ec2, run: BakeRun | None, lock: Path | None = None, succeeded: bool = False) -> None:
    """No builder, group or key pair; no AMI (in any state) from the run; the lock unchanged.
    And, tags or not, in every region: no instance, security group, key pair or snapshot (but an
    AMI's own) that was not there before the run started (``new_since``).

    Set FAULTS_GLOBAL_LEFTOVERS=1 (nothing else using the sandbox) to check with
    support.sandbox_bakes.leftovers across every run instead of this run's tags only."""
    if run is not None:
        assert run.baseline.left() == {}, "the test's runs left these behind"
    if os.environ.get("FAULTS_GLOBAL_LEFTOVERS") == "1":
        assert leftovers(ec2) == {"instances": [], "security_groups": [], "key_pairs": []}
    if run is not None and not run.run_id:
        # No pool started: the run must not have created anything at all.
        assert not succeeded, "a successful run starts a pool"
        made = [a for a in CREATING if run.proxy.calls_to(a)]
        assert made == [], f"a run that started no pool called {made}"
    elif run is not None:
        assert leftovers_of(ec2, run.run_id) == {"instances": [], "security_groups": [], "key_pairs": []}
        amis = amis_of_run(ec2, run.run_id)
        if succeeded:  # exactly the one AMI, available (no half-made one beside it)
            states = [i["State"] for i in ec2.describe_images(ImageIds=amis)["Images"]] if amis else []
            assert states == ["available"], (amis, states)
        else:
            assert amis == [], "a failed or interrupted run left an AMI"
    if lock is not None:
        assert lock.read_text() == LOCK_BEFORE, "the lock file changed"
        assert not [p.name for p in lock.parent.glob(".amis.lock.json.*.tmp")], "a temporary lock file was left"


def step_started(step: str) -> Callable[[dict], bool]:
    return lambda e: e.get("kind") == "step" and e.get("step") == step and e.get("status") == "started"
