"""The two TLS registries: the sample registry (anonymous) and the ECR look-alike on 443.

The look-alike answers to ``123456789012.dkr.ecr.us-east-1.amazonaws.com`` (mapped to
127.0.0.1 in /etc/hosts) and demands Basic auth as user ``AWS`` with the password moto's
``ecr:GetAuthorizationToken`` returns, so a bake's real ECR login path is exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bake_sandbox import tls
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import ECR_HOST, ECR_PORT, ECR_USER, HOST, Layout
from bake_sandbox.process import Daemon, port_open
from bake_sandbox.registry import BINARY, LocalRegistry, stop_pidfile, write_htpasswd


def sample_root(layout: Layout) -> Path:
    return layout.registry_dir / "sample"


def ecr_root(layout: Layout) -> Path:
    return layout.registry_dir / "ecr"


def _ours_running(root: Path) -> bool:
    try:
        pid = int((root / "registry.pid").read_text().strip())
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith(BINARY)
    except (OSError, ValueError):
        return False


def _start(root: Path, port: int, htpasswd: Path | None, what: str, layout: Layout) -> None:
    if _ours_running(root):
        return
    if port_open(HOST, port):
        raise SandboxError(f"{what}: {HOST}:{port} is taken by another process")
    crt, key = tls.server_cert(layout)
    reg = LocalRegistry(root, port=port, host=HOST, tls=(crt, key), htpasswd=htpasswd)
    reg.write_config()
    # Started through our Daemon, not LocalRegistry.start: its bind probe (no SO_REUSEADDR)
    # fails for a minute after a down while the port's old connections sit in TIME_WAIT.
    # Same pid and log paths, so registry.stop_pidfile still finds it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    d = Daemon("registry", [BINARY, "serve", str(reg.config_path)], root, program=str(reg.config_path), env=env)
    d.start()

    def ready() -> bool:
        try:
            return reg._probe() in (200, 401)
        except OSError:
            return False

    d.wait_ready(ready, timeout=30, what=f"serving https://{reg.address}/v2/")


def start(layout: Layout, ecr_password: str) -> None:
    _start(sample_root(layout), layout.registry_port, None, "sample registry", layout)
    root = ecr_root(layout)
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "htpasswd"
    # Rewritten on every up: moto's token password could change with a moto upgrade, and the
    # registry rereads the file only at start, so restart it when the file changed.
    old = htpasswd.read_bytes() if htpasswd.exists() else b""
    if not old or not _htpasswd_matches(htpasswd, ecr_password):
        write_htpasswd(htpasswd, ECR_USER, ecr_password)
        htpasswd.chmod(0o600)
        if old:
            stop_pidfile(root / "registry.pid")
    _start(root, ECR_PORT, htpasswd, "ECR look-alike", layout)
    write_containerd_hosts(layout)


def _htpasswd_matches(path: Path, password: str) -> bool:
    r = subprocess.run(["htpasswd", "-vi", str(path), ECR_USER], input=password, capture_output=True, text=True)
    return r.returncode == 0


CONTAINERD_HOSTS_DIR = Path("/etc/containerd/certs.d")


def containerd_hosts_file(layout: Layout) -> Path:
    return CONTAINERD_HOSTS_DIR / layout.registry / "hosts.toml"


def write_containerd_hosts(layout: Layout) -> None:
    """Tell containerd's clients the sample registry speaks HTTPS.

    containerd's resolver talks plain HTTP to a localhost/127.0.0.1 registry unless a hosts.toml
    names an https server; ``ctr images pull --hosts-dir /etc/containerd/certs.d`` (the
    standard dir, on EKS AMIs too) then verifies TLS against the system trust store.
    """
    path = containerd_hosts_file(layout)
    text = (f"# Written by `python -m bake sandbox up`; removed by `down`.\n"
            f'server = "https://{layout.registry}"\n\n'
            f'[host."https://{layout.registry}"]\n  capabilities = ["pull", "resolve", "push"]\n')
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def remove_containerd_hosts(layout: Layout) -> None:
    path = containerd_hosts_file(layout)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def remove_storage(layout: Layout) -> None:
    """Delete what the registries store (``down --purge``): only while they are stopped."""
    for root in (sample_root(layout), ecr_root(layout)):
        shutil.rmtree(root / "storage", ignore_errors=True)


def stop(layout: Layout) -> None:
    for root in (sample_root(layout), ecr_root(layout)):
        stop_pidfile(root / "registry.pid")
    remove_containerd_hosts(layout)


def status(layout: Layout) -> dict[str, str]:
    def one(root: Path, port: int) -> str:
        return "up" if _ours_running(root) and port_open(HOST, port) else "down"

    return {"registry": one(sample_root(layout), layout.registry_port),
            "ecr-registry": one(ecr_root(layout), ECR_PORT)}


ECR_REGISTRY = ECR_HOST  # port 443 is implied: an ECR image reference never carries a port
