"""Where the sandbox keeps its state and which loopback ports it listens on.

Everything the sandbox writes lives under one root-owned state directory (default
/var/lib/bake-sandbox, ``BAKE_SANDBOX_DIR`` overrides it), so ``down`` and a test can find it
again. Ports are overridable so two checkouts can run side by side; the ECR look-alike stays on
443 because an ECR registry name carries no port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/bake-sandbox")
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ECR_PORT = 443
ECR_USER = "AWS"
BASE_AMI = "ami-ekslinux"  # moto's built-in "amazon-eks-node-linux" image
BASE_AMI_PARAMETER = "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"
SSH_USER = "ec2-user"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{var}={raw!r} is not a port number")
    return port


@dataclass(frozen=True)
class Layout:
    root: Path
    moto_port: int = 45000
    ssh_port: int = 45022
    registry_port: int = 45443

    @classmethod
    def from_env(cls, state_dir: str | Path | None = None) -> Layout:
        root = Path(state_dir or os.environ.get("BAKE_SANDBOX_DIR") or DEFAULT_STATE_DIR)
        return cls(
            root=root.absolute(),
            moto_port=_port("BAKE_SANDBOX_MOTO_PORT", 45000),
            ssh_port=_port("BAKE_SANDBOX_SSH_PORT", 45022),
            registry_port=_port("BAKE_SANDBOX_REGISTRY_PORT", 45443),
        )

    # Process bookkeeping: one NAME.pid and NAME.log per daemon.
    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def overlay_dir(self) -> Path:
        return self.root / "overlay"

    @property
    def overlay_upper(self) -> Path:
        return self.overlay_dir / "upper"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def config_path(self) -> Path:
        return self.root / "bake.toml"

    @property
    def moto_endpoint(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    @property
    def registry(self) -> str:
        return f"{HOST}:{self.registry_port}"

    @property
    def ssh_host(self) -> str:
        return f"{HOST}:{self.ssh_port}"

    def ensure(self) -> None:
        """Create the state dir root-owned and private: it holds keys and the CA's private key."""
        for d in (self.root, self.run_dir, self.tls_dir, self.ssh_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, 0)
            d.chmod(0o755 if d in (self.root, self.ssh_dir) else 0o700)
