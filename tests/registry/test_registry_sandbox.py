"""bake_sandbox.oci and bake_sandbox.registry against the real skopeo and docker-registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests
from registry_support import AUTH_PASSWORD, AUTH_USER, Pki, require

from bake_sandbox import oci
from bake_sandbox.registry import LocalRegistry, LocalRegistryError, stop_pidfile


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def test_layout_is_deterministic_and_has_the_asked_layer_sizes(tmp_path: Path) -> None:
    a = oci.build_layout(tmp_path / "a", "v1", [1000, 3000], seed=7)
    b = oci.build_layout(tmp_path / "b", "v1", [1000, 3000], seed=7)
    c = oci.build_layout(tmp_path / "c", "v1", [1000, 3000], seed=8)
    assert a == b != c
    manifest_bytes = _blob(tmp_path / "a", a)
    assert a == "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    manifest = json.loads(manifest_bytes)
    sizes = []
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(_blob(tmp_path / "a", layer["digest"]))) as tar:
            sizes.append([m.size for m in tar.getmembers()])
    assert sizes == [[1000], [3000]]
    config = json.loads(_blob(tmp_path / "a", manifest["config"]["digest"]))
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert [(m["digest"], m["annotations"][oci.REF_NAME]) for m in index["manifests"]] == [(a, "v1")]


def test_layout_is_readable_by_skopeo_and_holds_several_tags(tmp_path: Path) -> None:
    require("skopeo")
    one = oci.build_layout(tmp_path, "one", [10], seed=1)
    multi = oci.build_layout(tmp_path, "multi", [10], seed=2, platforms=[("linux", "amd64"), ("linux", "arm64")])
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{tmp_path}:multi"], capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == multi
    platforms = [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]]
    assert platforms == ["amd64", "arm64"]
    cfg = subprocess.run(["skopeo", "inspect", "--config", f"oci:{tmp_path}:one"], capture_output=True, check=True).stdout
    assert json.loads(cfg)["architecture"] == "amd64"
    assert one != multi


def test_push_returns_the_digest_the_registry_serves(registry: LocalRegistry, push_image) -> None:
    digest = push_image(registry, "sandbox/push:v1", [4096, 100], seed=3)
    resp = requests.head(
        f"{registry.url}/v2/sandbox/push/manifests/v1",
        headers={"Accept": oci.MT_MANIFEST}, timeout=10,
    )
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == digest


def test_push_to_tls_registry_needs_the_ca(tls_registry: LocalRegistry, pki: Pki, push_image, tmp_path: Path) -> None:
    oci.build_layout(tmp_path / "l", "v1", [10], seed=4)
    with pytest.raises(oci.OciError, match="certificate"):
        oci.push(tmp_path / "l", "v1", f"{tls_registry.address}/sandbox/tls:v1")
    digest = push_image(tls_registry, "sandbox/tls:v1", [10], seed=4, cert_dir=pki.cert_dir)
    assert digest.startswith("sha256:")


def test_push_with_credentials(auth_registry: LocalRegistry, pki: Pki, push_image, tmp_path: Path) -> None:
    oci.build_layout(tmp_path / "l", "v1", [10], seed=5)
    with pytest.raises(oci.OciError, match="unauthorized|authentication required") as exc:
        oci.push(tmp_path / "l", "v1", f"{auth_registry.address}/sandbox/auth:v1",
                 creds=(AUTH_USER, "wrong-password"), cert_dir=pki.cert_dir)
    assert "wrong-password" not in str(exc.value)
    digest = push_image(auth_registry, "sandbox/auth:v1", [10], seed=5,
                        creds=(AUTH_USER, AUTH_PASSWORD), cert_dir=pki.cert_dir)
    assert digest.startswith("sha256:")


def test_registry_config_uses_auth_and_tls(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path, port=5999, tls=("c.pem", "k.pem"), htpasswd=tmp_path / "h", realm="r")
    config = json.loads(reg.write_config().read_text())
    assert config["http"]["addr"] == "127.0.0.1:5999"
    assert config["http"]["tls"] == {"certificate": "c.pem", "key": "k.pem"}
    assert config["auth"] == {"htpasswd": {"realm": "r", "path": str(tmp_path / "h")}}
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")
    assert reg.url == "https://127.0.0.1:5999"


def test_detached_registry_survives_and_stops_by_pid_file(tmp_path: Path) -> None:
    require("docker-registry")
    reg = LocalRegistry(tmp_path).start(detach=True)
    pid = int(reg.pid_path.read_text())
    assert os.getsid(pid) == pid  # its own session: a Ctrl-C to ours does not reach it
    assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200
    assert reg.log_path.exists()
    assert stop_pidfile(reg.pid_path) is True
    reg.process.wait(5)  # type: ignore[union-attr]  # reap: we are its parent in this test
    assert not reg.pid_path.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{reg.url}/v2/", timeout=5)
    assert stop_pidfile(reg.pid_path) is False


def test_a_taken_port_fails_with_the_registry_log(tmp_path: Path, registry: LocalRegistry) -> None:
    require("docker-registry")
    start = time.monotonic()
    with pytest.raises(LocalRegistryError, match="(?i)address already in use"):
        LocalRegistry(tmp_path, port=registry.port).start(timeout=20)
    assert time.monotonic() - start < 15  # noticed the exit, did not wait out the timeout


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing installed
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed: docker-registry, skopeo"):
        require("docker-registry", "skopeo")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require("docker-registry")


def test_a_registry_restarts_on_the_same_port(tmp_path: Path, push_image) -> None:
    require("docker-registry")
    reg = LocalRegistry(tmp_path)
    with reg:
        digest = push_image(reg, "sandbox/restart:v1", [100], seed=12)  # leaves TIME_WAIT sockets
    with reg:  # same port, same storage: the image is still there
        resp = requests.head(f"{reg.url}/v2/sandbox/restart/manifests/v1", headers={"Accept": oci.MT_MANIFEST}, timeout=5)
        assert resp.headers["Docker-Content-Digest"] == digest
