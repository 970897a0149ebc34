"""Test images: an OCI image layout built on disk, pushed to a registry with skopeo.

The sandbox and the tests need images whose digests they know in advance. ``build_layout``
writes one per call: tar layers of seeded random bytes (so a layer's size is what was asked
and the same seed gives the same digests), an image config and a manifest, tagged in the
layout's ``index.json``; with several platforms the tag names an image index (a multi-arch
image) instead. ``push`` copies a tag to ``docker://HOST[:PORT]/NAME:TAG`` with skopeo and
returns the digest the registry stored, which is the one ``build_layout`` returned: the copy
runs with ``--preserve-digests`` so skopeo fails rather than silently re-encode anything.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bake.errors import BakeError

OCI_LAYOUT_VERSION = "1.0.0"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"


class OciError(BakeError):
    """Building or pushing a test image failed; the message says which and why."""


def _blob(layout: Path, data: bytes, media_type: str, **extra: object) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    if not path.exists():
        path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _layer(size: int, rng: random.Random, index: int) -> bytes:
    """An uncompressed tar holding one file of ``size`` random bytes, with fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"bake-test/layer-{index}.bin")
        info.size, info.mtime, info.mode, info.uid, info.gid = size, 0, 0o644, 0, 0
        tar.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


def _image(layout: Path, layer_sizes: Sequence[int], rng: random.Random, os_: str, arch: str,
           env: Sequence[str] = ()) -> dict:
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        if size < 0:
            raise OciError(f"layer sizes are byte counts >= 0, got {size}")
        data = _layer(size, rng, i)
        layers.append(_blob(layout, data, MT_LAYER))
        diff_ids.append(layers[-1]["digest"])  # uncompressed: the diff id is the blob digest
    config = {
        "architecture": arch,
        "os": os_,
        "config": {"Cmd": ["/bin/true"], **({"Env": list(env)} if env else {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "1970-01-01T00:00:00Z",
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": _blob(layout, _json(config), MT_CONFIG),
        "layers": layers,
    }
    return _blob(layout, _json(manifest), MT_MANIFEST, platform={"architecture": arch, "os": os_})


def build_layout(
    directory: str | Path,
    tag: str,
    layer_sizes: Sequence[int],
    seed: int = 0,
    platforms: Sequence[tuple[str, str]] = (("linux", "amd64"),),
    env: Sequence[str] = (),
) -> str:
    """Add an image tagged ``tag`` to the OCI layout at ``directory`` (created if needed).
    ``env``: its config's ``Env`` (``NAME=VALUE``), e.g. a CUDA image's NVIDIA_REQUIRE_CUDA.

    One platform (default linux/amd64) gives a plain image manifest; several give an image
    index over one manifest per platform. Returns the digest of what ``tag`` points to, which
    is what a registry reports and what containerd records after a push of it.
    """
    layout = Path(directory)
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    if not platforms:
        raise OciError("at least one platform is needed")
    rng = random.Random(seed)
    manifests = [_image(layout, layer_sizes, rng, os_, arch, env) for os_, arch in platforms]
    if len(manifests) == 1:
        top = dict(manifests[0])
        top.pop("platform")
    else:
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        top = _blob(layout, _json(index), MT_INDEX)
    top["annotations"] = {REF_NAME: tag}

    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"].append(top)
    index_path.write_bytes(_json(index))
    return str(top["digest"])


def push(
    directory: str | Path,
    tag: str,
    dest: str,
    creds: tuple[str, str] | None = None,
    tls_verify: bool = True,
    cert_dir: str | Path | None = None,
    timeout: float = 300,
) -> str:
    """Copy ``oci:DIRECTORY:TAG`` to ``docker://DEST`` (``HOST[:PORT]/NAME:TAG``); return the digest.

    ``creds`` (user, password) go to skopeo in a private auth file, not on its command line,
    where any local user could read them. TLS is verified against the system trust store unless
    ``cert_dir`` (a directory of ``*.crt`` CA files) is given or ``tls_verify`` is False (a
    plain-http test registry).
    """
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise OciError("skopeo is not installed (apt-get install skopeo)")
    if dest.startswith("docker://"):
        dest = dest.removeprefix("docker://")
    with tempfile.TemporaryDirectory(prefix="bake-skopeo-") as tmp:
        work = Path(tmp)
        digestfile = work / "digest"
        # Our own policy: the host's policy.json may be missing or stricter than a test needs.
        policy = work / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        argv = [
            skopeo, "--policy", str(policy), "copy", "--all", "--preserve-digests",
            "--digestfile", str(digestfile), f"--dest-tls-verify={'true' if tls_verify else 'false'}",
        ]
        if cert_dir is not None:
            argv += ["--dest-cert-dir", str(cert_dir)]
        if creds is not None:
            user, password = creds
            host = dest.split("/", 1)[0]
            authfile = work / "auth.json"
            fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            with os.fdopen(fd, "w") as f:
                json.dump({"auths": {host: {"auth": token}}}, f)
            argv += ["--dest-authfile", str(authfile)]
        else:
            argv += ["--dest-no-creds"]
        argv += [f"oci:{directory}:{tag}", f"docker://{dest}"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OciError(f"skopeo copy to {dest} did not finish within {timeout:.0f}s") from None
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if creds is not None:
                err = err.replace(creds[1], "***")
            raise OciError(f"skopeo copy oci:{directory}:{tag} to {dest} failed (exit {proc.returncode}): {err}")
        return digestfile.read_text().strip()
