"""Synthesis cost of the rollout side against the bare import of the AWS provider bindings.

    .venv/bin/python bench/synth_bench.py [--repeat N] [--pools 1 50]

Every measurement is a fresh subprocess (the jsii runtime is a node child of it): wall time,
and peak RSS of the whole process tree (python + node, sampled every 20 ms from /proc), median
of N runs. The baseline imports cdktf, cdktf_cdktf_provider_aws and the submodules the
constructs use, and nothing else; a project run is `python main.py` on a generated bake.toml and
amis.lock.json with that many pools (a mix of the three launch modes). Target: the project adds
at most 10% over the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "constructs")]

BASELINE = (
    "import cdktf, cdktf_cdktf_provider_aws\n"
    "import cdktf_cdktf_provider_aws.provider, cdktf_cdktf_provider_aws.launch_template\n"
    "import cdktf_cdktf_provider_aws.launch_configuration, cdktf_cdktf_provider_aws.autoscaling_group\n"
    "import cdktf_cdktf_provider_aws.eks_node_group\n"
)


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                ppid = vm = 0
                for line in f:
                    if line.startswith("PPid:"):
                        ppid = int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        vm = int(line.split()[1])
        except OSError:
            continue
        parents[int(d)] = ppid
        rss[int(d)] = vm
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(p, 0) for p in tree)


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak MiB of the process tree) for one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kb(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return elapsed, peak / 1024


def write_project(d: Path, n: int) -> None:
    from bake.model.lock import ImageDigest, LockEntry, LockFile

    lines = ['region = "us-east-1"', "[defaults]", 'base_ami = "ami-0123456789abcdef0"',
             'images = ["docker.io/library/nginx:1.27"]', 'instance_type = "m6i.large"']
    for i in range(n):
        name = f"pool{i:02d}"
        mode = ("template", "configuration", "nodegroup")[i % 3] if n > 1 else "template"
        lines += [f"[pools.{name}]", f'launch = "{mode}"']
        if mode == "nodegroup":
            lines += [f"[pools.{name}.nodegroup]", 'cluster_name = "c"',
                      'node_role_arn = "arn:aws:iam::123456789012:role/n"', 'subnet_ids = ["subnet-1"]']
        else:
            lines += [f"[pools.{name}.asg]", "min_size = 1", "max_size = 5", 'subnet_ids = ["subnet-1", "subnet-2"]']
            if mode == "template":
                lines += [f"[pools.{name}.asg.instance_refresh]", "min_healthy_percentage = 90"]
        lines += [f"[pools.{name}.launch_template]", 'user_data = "#!/bin/bash\\n"', 'security_group_ids = ["sg-1"]']
    (d / "bake.toml").write_text("\n".join(lines) + "\n")
    lock = LockFile(d / "amis.lock.json")
    for i in range(n):
        e = LockEntry(ami_id=f"ami-{i:017x}", region="us-east-1", fingerprint="f", base_ami="ami-0123456789abcdef0",
                      images=[ImageDigest(ref="docker.io/library/nginx:1.27", digest="sha256:" + "0" * 64)],
                      built_at="2025-01-01T00:00:00Z")
        lock.update(f"pool{i:02d}", lambda p, e=e: p.promoted(e))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pools", type=int, nargs="+", default=[1, 50])
    args = ap.parse_args()
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CHECKPOINT_DISABLE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "constructs")]))
    runs: list[tuple[str, list[str], Path]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(("bare provider import", [sys.executable, "-c", BASELINE], Path(tmp)))
        for n in args.pools:
            d = Path(tmp) / f"p{n}"
            d.mkdir()
            write_project(d, n)
            runs.append((f"main.py, {n} pool{'s' if n > 1 else ''}", [sys.executable, str(ROOT / "main.py")], d))
        results: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):  # interleaved, so drift hits every row alike
            for label, cmd, cwd in runs:
                results.setdefault(label, [])  # type: ignore[arg-type]
                results[label].append(measure(cmd, cwd, env))  # type: ignore[attr-defined]
    base_t = statistics.median(t for t, _ in results[runs[0][0]])  # type: ignore[index]
    base_m = statistics.median(m for _, m in results[runs[0][0]])  # type: ignore[index]
    print(f"{'run':<24} {'time s':>8} {'vs base':>8} {'min s':>7} {'peak MiB':>9} {'vs base':>8}"
          f"   (median of {args.repeat}; min: least disturbed run)")
    worst = 0.0
    for label, *_ in runs:
        t = statistics.median(x for x, _ in results[label])  # type: ignore[index]
        m = statistics.median(y for _, y in results[label])  # type: ignore[index]
        dt, dm = (t / base_t - 1) * 100, (m / base_m - 1) * 100
        if label != runs[0][0]:
            worst = max(worst, dt, dm)
        tmin = min(x for x, _ in results[label])  # type: ignore[index]
        print(f"{label:<24} {t:8.2f} {dt:+7.1f}% {tmin:7.2f} {m:9.0f} {dm:+7.1f}%")
    print(f"worst overhead {worst:+.1f}% (target: at most +10%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
