"""Fixtures for the registry tests: real docker-registry processes, skopeo pushes, a CA, moto.

Under CI=true a missing tool fails the test instead of skipping it: CI must not go green by
running nothing.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bake_sandbox.private_moto import private_moto_server

from bake_sandbox import oci
from bake_sandbox.registry import LocalRegistry, write_htpasswd
from registry_support import AUTH_PASSWORD, AUTH_USER, Pki, issue_cert, openssl, require


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    require("openssl")
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = d / "ca.crt", d / "ca.key"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=bake test CA",
    )
    cert, key = issue_cert(d, ca, ca_key, "server", ["IP:127.0.0.1", "DNS:localhost"])
    cert_dir = d / "skopeo-certs"
    cert_dir.mkdir()
    shutil.copy(ca, cert_dir / "ca.crt")
    return Pki(dir=d, ca_cert=ca, cert=cert, key=key, cert_dir=cert_dir)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A plain-http registry, no auth."""
    require("docker-registry")
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[LocalRegistry]:
    require("docker-registry")
    with LocalRegistry(tmp_path_factory.mktemp("tls-registry"), tls=(pki.cert, pki.key)) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[LocalRegistry]:
    """TLS and htpasswd Basic auth for AUTH_USER / AUTH_PASSWORD."""
    require("docker-registry", "htpasswd")
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = write_htpasswd(root / "htpasswd", AUTH_USER, AUTH_PASSWORD)
    with LocalRegistry(root, tls=(pki.cert, pki.key), htpasswd=htpasswd, realm="bake-test") as reg:
        yield reg


@pytest.fixture
def push_image(tmp_path: Path) -> Callable[..., str]:
    """push_image(registry, "team/app:v1", sizes, seed, **push_kw) -> the digest skopeo pushed."""
    require("skopeo")

    def push(reg: LocalRegistry, name_tag: str, sizes: list[int] = [2048], seed: int = 0, **kw: object) -> str:
        tag = name_tag.rpartition(":")[2]
        layout = tmp_path / f"layout-{name_tag.replace('/', '_').replace(':', '_')}"
        platforms = kw.pop("platforms", (("linux", "amd64"),))
        env = kw.pop("env", ())
        built = oci.build_layout(layout, tag, sizes, seed=seed, platforms=platforms, env=env)  # type: ignore[arg-type]
        if not reg.tls:
            kw.setdefault("tls_verify", False)
        pushed = oci.push(layout, tag, f"{reg.address}/{name_tag}", **kw)  # type: ignore[arg-type]
        assert pushed == built, "skopeo changed the manifest despite --preserve-digests"
        return pushed

    return push


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server subprocess; yields its endpoint URL."""
    if not Path(sys.executable).with_name("moto_server").exists():
        require("moto_server")
    with private_moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return moto_server
