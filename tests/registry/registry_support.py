"""Helpers shared by the registry tests (imported by conftest.py and the test modules).

A uniquely named module rather than ``conftest``: another conftest.py may own that name.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


from support.ci import unavailable

AUTH_USER = "alice"
AUTH_PASSWORD = "correct-horse-battery"


def require(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        unavailable(f"not installed: {', '.join(missing)}")


@dataclass
class Pki:
    dir: Path
    ca_cert: Path
    cert: Path  # for 127.0.0.1 and localhost, signed by the CA
    key: Path
    cert_dir: Path  # skopeo's --dest-cert-dir: holds ca.crt

    def issue(self, name: str, sans: list[str]) -> tuple[Path, Path]:
        return issue_cert(self.dir, self.ca_cert, self.dir / "ca.key", name, sans)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def issue_cert(d: Path, ca: Path, ca_key: Path, name: str, sans: list[str]) -> tuple[Path, Path]:
    key, csr, cert, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    ext.write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )
    return cert, key


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")
