"""The sandbox's certificate authority and the registries' server certificate.

The CA goes into the system trust store, because that is what containerd, dockerd, ctr and
skopeo verify against; no runtime needs an insecure-registry flag, so the pulls a bake makes
here take the same TLS path as against ECR. Go reads the system roots once per process: the CA
must be installed before containerd and dockerd start. The CA is made once per state dir and
kept across ``down``/``up``, so a daemon that outlives a ``down`` still trusts the next ``up``.
"""

from __future__ import annotations

import filecmp
import ipaddress
import os
import shutil
from pathlib import Path

from bake_sandbox.layout import ECR_HOST, HOST, Layout
from bake_sandbox.process import run

TRUSTED_CA = Path("/usr/local/share/ca-certificates/bake-sandbox.crt")
SERVER_NAMES = [HOST, "localhost", ECR_HOST]


def ca_cert(layout: Layout) -> Path:
    return layout.tls_dir / "ca.crt"


def server_cert(layout: Layout) -> tuple[Path, Path]:
    return layout.tls_dir / "server.crt", layout.tls_dir / "server.key"


def ensure(layout: Layout) -> None:
    """Make the CA and a server certificate for every name the registries answer to."""
    d = layout.tls_dir
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    if not (ca_key.exists() and ca_crt.exists()):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
             "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", "/CN=bake-sandbox local CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            "tls: make CA")
    crt, key = server_cert(layout)
    names = d / "server.names"
    wanted = ",".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in SERVER_NAMES)
    if crt.exists() and key.exists() and names.exists() and names.read_text() == wanted:
        return
    ext = d / "server.ext"
    ext.write_text(f"subjectAltName={wanted}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    csr = d / "server.csr"
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", str(key), "-out", str(csr),
         "-subj", f"/CN={HOST}"], "tls: make server key")
    # 825 days: the longest validity Apple/Go-era clients accept for a leaf certificate.
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
         "-days", "825", "-sha256", "-extfile", str(ext), "-out", str(crt)], "tls: sign server certificate")
    # docker-registry runs as root here, but keep the key private anyway.
    key.chmod(0o600)
    names.write_text(wanted)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def install(layout: Layout) -> None:
    """Put the CA into the system trust store (a no-op when it is there already)."""
    src = ca_cert(layout)
    if TRUSTED_CA.exists() and filecmp.cmp(src, TRUSTED_CA, shallow=False) and trusted():
        return
    TRUSTED_CA.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, TRUSTED_CA)
    TRUSTED_CA.chmod(0o644)
    run(["update-ca-certificates"], "tls: update-ca-certificates")


def uninstall() -> None:
    link = Path("/etc/ssl/certs/bake-sandbox.pem")
    if TRUSTED_CA.exists() or link.is_symlink():
        TRUSTED_CA.unlink(missing_ok=True)
        # update-ca-certificates rebuilds the bundle without it but leaves the dangling link.
        link.unlink(missing_ok=True)
        run(["update-ca-certificates"], "tls: update-ca-certificates")
    # ...and its hash link (HASH.0 -> bake-sandbox.pem), which Go and OpenSSL read as a directory.
    for p in link.parent.glob("*.[0-9]"):
        if p.is_symlink() and os.readlink(p) == link.name:
            p.unlink()


def trusted() -> bool:
    """Whether the CA is in the bundle Python, curl and Go read."""
    link = Path("/etc/ssl/certs/bake-sandbox.pem")
    return TRUSTED_CA.exists() and link.exists()
