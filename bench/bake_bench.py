"""Bake wall time on N images, against the manual procedure's way and against the floor.

All three pull the same number of images of the same size from the sandbox's TLS registry
into the same containerd, each set freshly pushed (new content) so nothing is cached:

- floor:  every image pulled at once with ctr into the node's containerd, no tool (what a bake can approach);
- manual: one SSH session to the builder, `sudo ctr images pull` one image after the other,
          as the manual procedure does (only the pulls are timed: launching, snapping and
          switching by hand are not counted against it);
- tool:   `python -m bake build` end to end (process start, digest resolution, key pair,
          security group, instance, SSH, pulls, verification, scrub, AMI, lock), at its
          documented default pull_concurrency (4) and with every image at once (= --images).

Run in one go, on one machine, so the ratios compare like with like:
    .venv/bin/python bench/bake_bench.py [--images 8] [--mb 128] [--rounds 5]
Needs the sandbox (`python -m bake sandbox up`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bake.runtimes import CRI_LABELS, Containerd  # noqa: E402
from bake_sandbox import Sandbox, node_containerd  # noqa: E402

HOSTS_DIR = Containerd.hosts_dir


def push_set(sb: Sandbox, label: str, count: int, mb: float) -> list[str]:
    refs = [f"{sb.info.registry}/bench/{label}-{i}:v{time.time_ns()}" for i in range(count)]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda r: sb.push_image(r.rsplit(":", 1)[0], r.rsplit(":", 1)[1], size_mb=mb), refs))
    return refs


def node_ctr(sb: Sandbox) -> list[str]:
    """The builder's own ctr on the node's containerd (which must be running: ``node_containerd.running``)."""
    return [str(node_containerd.bin_dir(sb.layout) / "ctr"), "--address", node_containerd.SOCKET]


def floor(sb: Sandbox, refs: list[str]) -> float:
    with node_containerd.running(sb.layout):  # stopped between bakes, as on an EKS AL2023 AMI
        t0 = time.perf_counter()
        procs = [subprocess.Popen([*node_ctr(sb), "-n", "k8s.io", "images", "pull", "--hosts-dir", HOSTS_DIR, r],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for r in refs]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"floor pull failed: {p.stderr.read().decode()}")
        return time.perf_counter() - t0


def pull_serially(client, refs: list[str]) -> float:  # noqa: ANN001 - a paramiko.SSHClient
    """The manual procedure's pulls: one `ctr images pull` after the other on one SSH session,
    with containerd started first (untimed) and stopped after, as today's node needs."""
    labels = " ".join(f"--label {label}" for label in CRI_LABELS)

    def run(command: str) -> None:
        _, out, err = client.exec_command(command)
        if out.channel.recv_exit_status() != 0:
            raise SystemExit(f"manual: {command} failed: {err.read().decode()}")

    run("sudo -n systemctl start containerd")
    t0 = time.perf_counter()
    for r in refs:
        run(f"sudo -n ctr -n k8s.io images pull --hosts-dir {HOSTS_DIR} {labels} {shlex.quote(r)}")
    took = time.perf_counter() - t0
    run("sudo -n systemctl stop containerd")
    return took


def manual(sb: Sandbox, refs: list[str]) -> float:
    """One SSH session, one pull after the other. The sandbox admits a key while an instance
    that carries it runs, so the bench launches one, as a person would."""
    import paramiko

    from bake.steps.keypair import generate_ed25519

    ec2 = sb.client("ec2")
    pkey, public = generate_ed25519()
    name = f"bench-manual-{time.time_ns()}"
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public.encode())
    inst = ec2.run_instances(ImageId=sb.info.base_ami, MinCount=1, MaxCount=1, KeyName=name)["Instances"][0]["InstanceId"]
    try:
        host, port = sb.info.ssh_endpoint
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect(host, port=port, username=sb.info.ssh_user, pkey=pkey, look_for_keys=False, allow_agent=False)
        elapsed = pull_serially(client, refs)
        client.close()
        return elapsed
    finally:
        ec2.terminate_instances(InstanceIds=[inst])
        ec2.delete_key_pair(KeyName=name)


def bench_config(sb: Sandbox, refs: list[str], ssh_host: str, concurrency: int | None = None) -> str:
    """The benches' one-pool bake.toml on the sandbox's builder; ``concurrency`` None: the
    tool's default pull_concurrency (no key)."""
    info = sb.info
    key = f"pull_concurrency = {concurrency}\n" if concurrency else ""
    return ('region = "us-east-1"\n[pools.bench]\n'
            f'base_ami = "ssm:{info.base_ami_ssm_parameter}"\n'
            f'ssh_host = "{ssh_host}"\nssh_cidrs = ["127.0.0.1/32"]\nssh_user = "{info.ssh_user}"\n'
            + key + f"images = [{', '.join(json.dumps(r) for r in refs)}]\n")


def tool(sb: Sandbox, refs: list[str], concurrency: int | None = None) -> float:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "bake.toml"
        cfg.write_text(bench_config(sb, refs, sb.info.ssh_host, concurrency))
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "bake", "build", "--config", str(cfg)],
                             capture_output=True, text=True, env={**os.environ, **sb.env()}, cwd=ROOT)
        elapsed = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"tool bake failed:\n{res.stderr}")
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--mb", type=float, default=128.0, help="size of each image's layer (MB)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds; each runs every variant once, in a rotating order (default: 3)")
    args = ap.parse_args()
    sb = Sandbox()
    if not sb.is_up():
        raise SystemExit("the sandbox is not up: python -m bake sandbox up")
    os.environ.update(sb.env())
    variants = {"floor": lambda r: floor(sb, r), "manual": lambda r: manual(sb, r), "tool (pull_concurrency 4, default)": lambda r: tool(sb, r),
                f"tool (pull_concurrency {args.images})": lambda r: tool(sb, r, args.images)}
    rounds: list[dict[str, float]] = []
    for n in range(args.rounds):
        k = n % len(variants)
        order = list(variants)[k:] + list(variants)[:k]  # the disk warms up: rotate who goes first
        got: dict[str, float] = {}
        for label in order:
            refs = push_set(sb, label.split()[0], args.images, args.mb)
            try:
                got[label] = variants[label](refs)
            finally:
                sb.discard_pushed(refs)  # registry, runtimes, every name: the disk stays as it was
        rounds.append(got)
        print(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in got.items()), file=sys.stderr)
    sb.collect_registry_garbage()  # the discarded images' blobs
    med = {k: statistics.median(r[k] for r in rounds) for k in variants}
    ratio = {k: statistics.median(r[k] / r["floor"] for r in rounds) for k in variants}
    total = args.images * args.mb
    print(f"{args.images} images x {args.mb:g} MB = {total:g} MB, fresh content per variant, "
          f"median of {args.rounds} rounds")
    print("| variant | seconds (median) | x floor (median of per-round ratios) |")
    print("|---|---|---|")
    for label in variants:
        print(f"| {label} | {med[label]:.2f} | {ratio[label]:.2f} |")
    for label in list(variants)[2:]:
        print(f"{label} vs manual: {statistics.median(r[label] / r['manual'] for r in rounds):.2f}x")
    print("target: tool within 1.5x of the floor")


if __name__ == "__main__":
    main()
