"""The sandbox gives back the disk a pushed test image took: registry, containerd, dockerd.

Against the real registry, containerd and dockerd: an image pushed, pulled into both runtimes
under the names a bake gives it, discarded, and its registry blobs collected; a sample image
pulled alongside must survive all of it.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from support.node_runtime import k8s_ctr, node_runtime
import requests

from bake_sandbox import Sandbox, registries
from bake_sandbox.images import ACCEPT, registry_digest
from bake_sandbox.layout import SYSTEM_CA_BUNDLE

pytestmark = pytest.mark.sandbox


def _ctr(*args: str) -> str:
    return k8s_ctr(Sandbox(), *args)


def _names() -> set[str]:
    return set(_ctr("images", "ls", "-q").split())


def _blob_path(sandbox, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return (registries.sample_root(sandbox.layout) / "storage/docker/registry/v2/blobs/sha256"
            / hexdigest[:2] / hexdigest / "data")


def _layers(ref: str) -> list[str]:
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    r = requests.get(f"https://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT},
                     verify=SYSTEM_CA_BUNDLE, timeout=10)
    r.raise_for_status()
    return [layer["digest"] for layer in r.json()["layers"]]


@pytest.fixture
def node_serving(sandbox):
    """The node's containerd kept serving for the whole test (each look would otherwise start it)."""
    with node_runtime(sandbox):
        yield


@pytest.mark.usefixtures("node_serving")
def test_a_discarded_image_leaves_the_registry_both_runtimes_and_the_disk(sandbox):
    sample = sandbox.info.images[0]
    repo = f"{sandbox.info.registry}/scratch/{uuid.uuid4().hex[:10]}"
    ref = f"{repo}:v1"
    digest = sandbox.push_image(repo, "v1", size_mb=2)
    layers = _layers(ref)
    assert layers and all(_blob_path(sandbox, d).exists() for d in layers)

    for r in (sample, ref):
        _ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", r)
    # The names a bake adds for the kubelet: the digest, and an alias on another registry host.
    alias = f"mirror.example.com/{uuid.uuid4().hex[:8]}:v1"
    _ctr("images", "tag", ref, f"{repo}@{digest}", alias)
    subprocess.run(["docker", "pull", ref], capture_output=True, text=True, check=True, timeout=120)
    assert {ref, f"{repo}@{digest}", alias, sample} <= _names()
    # What a pull cut off leaves: ctr's expiring lease (it would hold the blobs for a day). One
    # that never expires is not a pull's, and stays.
    cut = f"cut-pull-{uuid.uuid4().hex[:8]}"
    kept = f"not-a-pull-{uuid.uuid4().hex[:8]}"
    _ctr("leases", "create", "--id", cut)
    _ctr("leases", "create", "--id", kept, "--expires", "0")

    removed = sandbox.discard_pushed([ref])

    assert {f"k8s.io/{n}" for n in (ref, f"{repo}@{digest}", alias)} | {f"k8s.io/lease {cut}"} <= set(removed), removed
    leases = _ctr("leases", "ls", "-q").split()
    assert cut not in leases and kept in leases
    _ctr("leases", "rm", kept)
    assert sample in _names() and not {ref, f"{repo}@{digest}", alias} & _names()
    docker = subprocess.run(["docker", "image", "ls", "-q", repo], capture_output=True, text=True, check=True)
    assert docker.stdout.strip() == ""
    assert registry_digest(ref) is None
    assert ref not in sandbox.info.digests

    sandbox.collect_registry_garbage()

    assert not any(_blob_path(sandbox, d).exists() for d in layers)
    assert registry_digest(sample) is not None  # kept, and served again after the restart
    assert sandbox.is_up()

