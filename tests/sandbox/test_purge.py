"""``sandbox down --purge`` gives the whole disk back; ``up`` brings the sandbox back as it was.

Against the real registries, containerd and dockerd: images pulled from the sandbox's registries
(and every other name of the same image) leave both runtimes, the registries' storage is
deleted, an image from elsewhere stays, and the next ``up`` serves the samples again. The
session's sandbox is brought back up at the end, so the tests after this one run as before.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest
from support.node_runtime import k8s_ctr
from support.cli import run_bake

from bake_sandbox import Sandbox, registries
from bake_sandbox.images import registry_digest

pytestmark = pytest.mark.sandbox


def _ctr(*args: str) -> str:
    return k8s_ctr(Sandbox(), *args)


def _docker_repositories() -> set[str]:
    out = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return set(out.split())


def test_down_purge_removes_the_sandboxs_images_everywhere_and_up_restores_it(sandbox):
    info = sandbox.info
    sample, ecr_sample = info.images[0], info.ecr_images[0]
    user, password = sandbox.ecr_credentials()
    _ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", sample)
    _ctr("images", "pull", "--user", f"{user}:{password}", ecr_sample)
    alias = f"mirror.example.com/{uuid.uuid4().hex[:8]}:v1"  # the same image under another host's name
    _ctr("images", "tag", sample, alias)
    # An image known only by a name from elsewhere (another digest): purge must not touch it.
    scratch = f"{info.registry}/scratch/{uuid.uuid4().hex[:10]}"
    sandbox.push_image(scratch, "v1", size_mb=0.1)
    _ctr("images", "pull", "--hosts-dir", "/etc/containerd/certs.d", f"{scratch}:v1")
    foreign = f"elsewhere.example.com/{uuid.uuid4().hex[:8]}:v1"
    _ctr("images", "tag", f"{scratch}:v1", foreign)
    _ctr("images", "rm", f"{scratch}:v1")
    subprocess.run(["docker", "pull", sample], capture_output=True, text=True, check=True, timeout=120)
    storage = [registries.sample_root(sandbox.layout) / "storage", registries.ecr_root(sandbox.layout) / "storage"]
    assert all(d.exists() for d in storage)

    try:
        down = run_bake("sandbox", "down", "--purge")
        assert down.returncode == 0, down.stderr
        assert "registry storage: stopped/removed" in down.stderr, down.stderr
    finally:
        sandbox.up()  # whatever happened: the rest of the session needs it

    names = set(_ctr("images", "ls", "-q").split())
    hosts = (info.registry + "/", info.ecr_registry + "/")
    assert not [n for n in names if n.startswith(hosts)], names
    assert alias not in names and foreign in names
    assert not [r for r in _docker_repositories() if r.startswith(hosts)]
    _ctr("images", "rm", foreign)
    # up pushed the samples into empty storage: the registries serve them again, and nothing else
    assert registry_digest(sample) is not None
    assert registry_digest(f"{scratch}:v1") is None
    assert sandbox.is_up()
