"""The sample images the sandbox serves: built with ``bake_sandbox.oci``, pushed with skopeo.

Each sample image is one seeded random layer, so the same name and size always give the same
digest: a warm ``up`` asks the registry for the tag's digest and pushes only what differs.
"""

from __future__ import annotations

import hashlib

import os
import random
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from bake_sandbox import oci
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import ECR_HOST, ECR_USER, SYSTEM_CA_BUNDLE, Layout

MB = 1024 * 1024
ACCEPT = ", ".join([oci.MT_MANIFEST, oci.MT_INDEX,
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


@dataclass(frozen=True)
class SampleSet:
    """Which sample images ``up`` provides. Env: BAKE_SANDBOX_IMAGES, BAKE_SANDBOX_IMAGE_MB."""

    count: int = 8
    size_mb: float = 10
    ecr_count: int = 1

    @classmethod
    def from_env(cls, count: int | None = None, size_mb: float | None = None) -> SampleSet:
        try:
            count = count if count is not None else int(os.environ.get("BAKE_SANDBOX_IMAGES", "8"))
            size_mb = size_mb if size_mb is not None else float(os.environ.get("BAKE_SANDBOX_IMAGE_MB", "10"))
        except ValueError as e:
            raise ValueError(f"BAKE_SANDBOX_IMAGES / BAKE_SANDBOX_IMAGE_MB: {e}") from None
        if count < 2 or size_mb < 0:
            raise ValueError("the sandbox needs at least 2 sample images (the legacy pool uses two) of size >= 0")
        return cls(count=count, size_mb=size_mb)

    def images(self, layout: Layout) -> list[str]:
        return [f"{layout.registry}/env/app-{n}:v1" for n in range(1, self.count + 1)]

    def ecr_images(self) -> list[str]:
        return [f"{ECR_HOST}/env/ecr-app{'' if n == 1 else f'-{n}'}:v1" for n in range(1, self.ecr_count + 1)]


def _split(ref: str) -> tuple[str, str, str]:
    host, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    return host, repository, tag


def _seed(ref: str, size_mb: float) -> int:
    # Stable across runs and Python processes (unlike hash()): the digest depends on name and size.
    # Hashed, so every character of the name counts (a plain int of the bytes modulo 2**63
    # kept only the last 8 bytes, and app-1..app-8 all got the same content).
    return int.from_bytes(hashlib.sha256(f"{ref}|{size_mb}".encode()).digest()[:8], "big")


def registry_digest(ref: str, auth: tuple[str, str] | None = None) -> str | None:
    """The digest the registry holds for ``ref``'s tag, or None when it has no such tag."""
    host, repository, tag = _split(ref)
    try:
        r = requests.head(f"https://{host}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT},
                          auth=auth, verify=SYSTEM_CA_BUNDLE, timeout=10)
    except requests.RequestException as e:
        raise SandboxError(f"registry {host}: {e}") from None
    if r.status_code == 404:
        return None
    if r.status_code != 200:
        raise SandboxError(f"registry {host}: HEAD manifest {repository}:{tag} answered HTTP {r.status_code}")
    return r.headers.get("Docker-Content-Digest")


def push(layout: Layout, ref: str, size_mb: float, seed: int, auth: tuple[str, str] | None = None,
         skip_if_present: bool = True, env: tuple[str, ...] = ()) -> str:
    """Build ``ref`` (one random layer of ``size_mb``, ``env`` in its config) and push it unless
    the registry has it."""
    host, repository, tag = _split(ref)
    work = layout.images_dir
    work.mkdir(parents=True, exist_ok=True)
    # A layout per push: layouts would otherwise keep every blob ever built.
    with tempfile.TemporaryDirectory(dir=work, prefix="layout-") as tmp:
        digest = oci.build_layout(tmp, tag, [int(size_mb * MB)], seed=seed, env=env)
        if skip_if_present and registry_digest(ref, auth) == digest:
            return digest
        try:
            pushed = oci.push(tmp, tag, f"{host}/{repository}:{tag}", creds=auth)
        except oci.OciError as e:
            raise SandboxError(str(e)) from None
    if pushed != digest:
        raise SandboxError(f"{ref}: registry stored {pushed}, expected {digest}")
    return digest


def push_samples(layout: Layout, samples: SampleSet, ecr_password: str) -> dict[str, str]:
    """Push every sample image that the registries lack; return ref -> digest."""
    jobs = [(ref, None) for ref in samples.images(layout)]
    jobs += [(ref, (ECR_USER, ecr_password)) for ref in samples.ecr_images()]
    # A few at once: skopeo's start-up, not the loopback copy, is most of each push's time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {ref: pool.submit(push, layout, ref, samples.size_mb, _seed(ref, samples.size_mb), auth)
                   for ref, auth in jobs}
        return {ref: f.result() for ref, f in futures.items()}


def random_seed() -> int:
    return random.SystemRandom().randrange(2**63)


def clean(layout: Layout) -> None:
    shutil.rmtree(layout.images_dir, ignore_errors=True)


__all__ = ["SampleSet", "push", "push_samples", "registry_digest", "random_seed"]
