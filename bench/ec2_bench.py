"""A bake against EC2's clock: how late each wait notices its state change, with how many calls,
and the whole bake's time against the simulated EC2 delays plus its pull phase.

The sandbox's moto answers at once; here each variant talks to it through its own
``bake_sandbox.ec2_clock`` (instance pending, SSH refused until running + boot, stopping, AMI
pending growing with the snapshot's size, shutting-down: the defaults of ``Timing``, see
docs/ec2-timing.md), so the shared sandbox keeps its instant answers for everyone else.

- tool:   `python -m bake build --json` at its default pull_concurrency; detection lags are
          measured by the clock (the first answer showing the new state, minus when EC2 would
          have changed it), call counts both by the clock and by the tool's own `wait` events;
- manual: the manual procedure's serial variant through the same clock: run-instances,
          `aws ec2 wait instance-running` (botocore's waiter: every 15 s), SSH retried every 5 s,
          one `ctr images pull` after another, stop + `wait instance-stopped`, create-image +
          `wait image-available`, terminate + `wait instance-terminated`;
- overhead: the tool again through an instant clock (moto's own timing), --overhead-rounds
          times (default 3): its whole time minus its pull phase minus its SSH login (issue 12's
          fixed-overhead target: 0.6 s), and the median time of each phase, cut at the --json
          events' timestamps (start and planning, each step, the clean-up, the exit).

    .venv/bin/python bench/ec2_bench.py [--images 8] [--mb 4] [--scale 1.0] [--skip-manual]
                                        [--overhead-only] [--overhead-rounds 3]
Needs the sandbox (`python -m bake sandbox up`); about 3 minutes at --scale 1 (EC2's delays
are most of it; --scale 0.5 halves them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bake_sandbox import Sandbox  # noqa: E402
from bake_sandbox.ec2_clock import Ec2Clock, Timing  # noqa: E402
from bench.bake_bench import bench_config, pull_serially, push_set  # noqa: E402

MANUAL_SSH_RETRY = 5.0


def scaled(scale: float) -> Timing:
    base = Timing()
    return Timing(**{f.name: getattr(base, f.name) * scale for f in fields(Timing)})


def new_clock(sb: Sandbox, timing: Timing) -> Ec2Clock:
    host, port = sb.info.ssh_endpoint
    return Ec2Clock(sb.info.moto_endpoint, timing, ssh_upstream=(host, port)).start()


def delays_of(clock: Ec2Clock) -> float:
    """The EC2 delays a serial bake cannot avoid: pending, boot to SSH, stopping, the AMI, shutting-down."""
    t = clock.timing
    ami = sum(v for k, v in clock.simulated_delays().items() if k.startswith("ami-"))
    return t.pending + t.ssh_after_running + t.stopping + ami + t.shutting_down


def stamp(ev: dict) -> float:
    return datetime.fromisoformat(ev["time"].replace("Z", "+00:00")).timestamp()


def tool(sb: Sandbox, clock: Ec2Clock, refs: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "bake.toml"
        cfg.write_text(bench_config(sb, refs, f"127.0.0.1:{clock.ssh_port}"))
        wall0, t0 = time.time(), time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "bake", "build", "--json", "--config", str(cfg)], capture_output=True,
                             text=True, env={**os.environ, **sb.env(), "AWS_ENDPOINT_URL": clock.url}, cwd=ROOT)
        total = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"tool bake failed:\n{res.stderr}")
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    started = {e["step"]: stamp(e) for e in events if e.get("kind") == "step" and e.get("status") == "started"}
    waits = {e["data"]["wait"]: e["data"] for e in events if e.get("kind") == "wait"}
    ami = next(e["data"]["ami_id"] for e in events if e.get("data", {}).get("ami_id"))
    return {"total": total, "pull": started["node-shape"] - started["pull"],
            "ssh_login": started["pull"] - started["connect"], "waits": waits, "ami": ami,
            "phases": phases(events, wall0, wall0 + total)}


# The stack the tool stands on, before any call of its own: the interpreter, the mandated
# libraries (paramiko as the tool imports it) and the two clients every bake makes.
FLOOR = ("import boto3, pydantic; from bake.lean_paramiko import paramiko; "
         "s = boto3.Session(region_name='us-east-1'); s.client('ec2'); s.client('ssm')")


def floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def phases(events: list[dict], start: float, end: float) -> list[tuple[str, float]]:
    """The bake's wall time cut at its events: process start and planning (to the first step),
    each step (from its start to the next one's), the clean-up after the lock is written (the
    undo of instance, group and key pair) and the process's end after ``pool.done``."""
    marks = [("start, imports, plan", start)]
    for e in events:
        if e.get("kind") == "step" and e.get("status") == "started":
            marks.append((e["step"], stamp(e)))
        elif e.get("kind") == "step" and e.get("step") == "lock":
            marks.append(("clean-up (undo)", stamp(e)))
        elif e.get("kind") == "pool.done":
            marks.append(("summary, exit", stamp(e)))
    marks.append(("end", end))
    return [(name, round(nxt - at, 3)) for (name, at), (_, nxt) in zip(marks, marks[1:])]


def manual(sb: Sandbox, clock: Ec2Clock, refs: list[str]) -> dict:
    import boto3
    import paramiko

    from bake.steps.keypair import generate_ed25519

    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=clock.url)
    pkey, public = generate_ed25519()
    name = f"bench-manual-{time.time_ns()}"
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public.encode())
    t0 = time.perf_counter()
    inst = ec2.run_instances(ImageId=sb.info.base_ami, MinCount=1, MaxCount=1, KeyName=name)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[inst])
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    while True:
        try:
            client.connect("127.0.0.1", port=clock.ssh_port, username=sb.info.ssh_user, pkey=pkey,
                           look_for_keys=False, allow_agent=False, timeout=10)
            break
        except (OSError, paramiko.SSHException):
            time.sleep(MANUAL_SSH_RETRY)
    pull = pull_serially(client, refs)
    client.close()
    ec2.stop_instances(InstanceIds=[inst])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[inst])
    ami = ec2.create_image(InstanceId=inst, Name=name)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[ami])
    ec2.terminate_instances(InstanceIds=[inst])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[inst])
    total = time.perf_counter() - t0
    ec2.delete_key_pair(KeyName=name)
    return {"total": total, "pull": pull, "ami": ami}


def forget_ami(sb: Sandbox, ami: str) -> None:
    ec2 = sb.client("ec2")
    snaps = [b["Ebs"]["SnapshotId"] for i in ec2.describe_images(ImageIds=[ami])["Images"]
             for b in i.get("BlockDeviceMappings", []) if b.get("Ebs", {}).get("SnapshotId")]
    ec2.deregister_image(ImageId=ami)
    for s in snaps:
        ec2.delete_snapshot(SnapshotId=s)


def report(label: str, run: dict, clock: Ec2Clock) -> list[float]:
    delays = delays_of(clock)
    lags = clock.detections()
    print(f"\n{label}: total {run['total']:.1f}s; simulated EC2 delays {delays:.1f}s; pull phase {run['pull']:.2f}s; "
          f"total - delays - pulls = {run['total'] - delays - run['pull']:.2f}s")
    print("| wait | detection lag (s) | calls (clock) | calls (tool's wait event) |")
    print("|---|---|---|---|")
    for d in lags:
        own = run.get("waits", {}).get(d["wait"], {}).get("calls", "")
        print(f"| {d['wait']} | {d['lag']:.2f} | {d['calls']} | {own} |")
    mean = statistics.mean(d["lag"] for d in lags)
    print(f"mean detection lag: {mean:.2f}s")
    return [d["lag"] for d in lags]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--mb", type=float, default=4.0, help="size of each image's layer (MB); small keeps the run short")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every EC2 delay (default 1: EC2's figures)")
    ap.add_argument("--skip-manual", action="store_true")
    ap.add_argument("--overhead-only", action="store_true", help="only the fixed overhead, through an instant clock")
    ap.add_argument("--overhead-rounds", type=int, default=3, help="bakes through the instant clock (median)")
    args = ap.parse_args()
    sb = Sandbox()
    if not sb.is_up():
        raise SystemExit("the sandbox is not up: python -m bake sandbox up")
    os.environ.update(sb.env())
    timing = scaled(args.scale)
    print(f"{args.images} images x {args.mb:g} MB (fresh content per variant); EC2 timing: "
          + ", ".join(f"{f.name} {getattr(timing, f.name):g}" for f in fields(Timing)))
    variants = [("tool (default pull_concurrency)", tool)] + ([] if args.skip_manual else [("manual, serial", manual)])
    if args.overhead_only:
        variants = []
    for label, run_variant in variants:
        clock = new_clock(sb, timing)
        refs = push_set(sb, "ec2", args.images, args.mb)
        try:
            run = run_variant(sb, clock, refs)
            lags = report(label, run, clock)
            if run_variant is tool:
                target = delays_of(clock) + run["pull"] + 3
                print(f"targets: mean lag {statistics.mean(lags):.2f}s (<= 1 s); total {run['total']:.1f}s <= "
                      f"delays + pulls + 3 s = {target:.1f}s: {'met' if run['total'] <= target else 'NOT met'}")
            forget_ami(sb, run["ami"])
        finally:
            clock.stop()
            sb.discard_pushed(refs)
    runs = []
    for _ in range(max(1, args.overhead_rounds)):
        clock = new_clock(sb, Timing.instant())
        refs = push_set(sb, "ec2-instant", args.images, args.mb)
        try:
            run = tool(sb, clock, refs)
            run["floor"] = floor()  # right after each bake: the same machine load
            run["overhead"] = run["total"] - run["pull"] - run["ssh_login"]
            print(f"\nfixed overhead (instant clock): total {run['total']:.2f}s - pull phase {run['pull']:.2f}s - "
                  f"SSH login {run['ssh_login']:.2f}s = {run['overhead']:.2f}s (target 0.6 s)")
            runs.append(run)
            forget_ami(sb, run["ami"])
        finally:
            clock.stop()
            sb.discard_pushed(refs)
    sb.collect_registry_garbage()  # the discarded images' blobs
    median = statistics.median(r["overhead"] for r in runs)
    print(f"\nfixed overhead, median of {len(runs)}: {median:.2f}s (target 0.6 s: {'met' if median <= 0.6 else 'NOT met'})")
    stack = statistics.median(r["floor"] for r in runs)
    above = statistics.median(r["overhead"] - r["floor"] for r in runs)
    print(f"the stack's floor (python -c \"{FLOOR}\"), median of {len(runs)}: {stack:.2f}s; "
          f"fixed overhead above it: {above:.2f}s")
    print("| phase | seconds (median) |\n|---|---|")
    for i, (name, _) in enumerate(runs[0]["phases"]):
        seconds = statistics.median(r["phases"][i][1] for r in runs)
        print(f"| {name}{' (not overhead)' if name in ('pull', 'connect') else ''} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
