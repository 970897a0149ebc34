"""Cache bytes against compressed bytes: what the sample images occupy on the builder's disk
after a bake, against what their registries say a pull downloads.

For each runtime (containerd, docker) it bakes the sandbox's sample images (plus the ECR
look-alike's) into a throw-away lock, then reads `python -m bake plan --json`: per image the
compressed size (its manifest's layers), per pool the compressed total and the `cache_bytes`
the bake measured (du of exactly the images' files on the builder).

    .venv/bin/python bench/cache_bench.py
Needs the sandbox (`python -m bake sandbox up`); run it under the sandbox lock on shared machines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bake.first_start import human_bytes
from bake_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def bake(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bake", *args, "--config", str(cfg)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ}, timeout=900)


def main() -> None:
    sb = Sandbox()
    if not sb.is_up():
        raise SystemExit("the sandbox is not up: python -m bake sandbox up")
    os.environ.update(sb.env())
    info = sb.info
    images = info.images + info.ecr_images
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in ("containerd", "docker"):
            cfg = Path(tmp) / f"{runtime}.toml"
            lines = ['region = "us-east-1"', f"[pools.{runtime}]",
                     f'base_ami = "ssm:{info.base_ami_ssm_parameter}"', f"images = {json.dumps(images)}",
                     f'runtime = "{runtime}"', f'ssh_host = "{info.ssh_host}"', f'ssh_user = "{info.ssh_user}"',
                     'ssh_cidrs = ["127.0.0.1/32"]']
            cfg.write_text("\n".join(lines) + "\n")
            built = bake(cfg, "build")
            if built.returncode != 0:
                raise SystemExit(f"{runtime}: bake failed: {built.stderr[-2000:]}")
            plan = json.loads(bake(cfg, "plan", "--json").stdout)["pools"][0]
            rows.append((runtime, len(images), plan["compressed_bytes"], plan["cache_bytes"]))
    print("| runtime | images | compressed (registry) | cache on disk (measured) | cache ÷ compressed |")
    print("|---|---|---|---|---|")
    for runtime, n, compressed, cache in rows:
        print(f"| {runtime} | {n} | {human_bytes(compressed)} ({compressed} B) | {human_bytes(cache)} ({cache} B) "
              f"| {cache / compressed:.2f} |")


if __name__ == "__main__":
    main()
