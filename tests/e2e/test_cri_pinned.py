"""The pinned path on containerd 1.7: the host runs Debian 12's containerd 1.6, which ignores
the pinned label, so these tests start a private containerd 1.7 (Debian 13's, unpacked into
.tools/ by `scripts/dev.sh setup`) on its own socket and state, and run the bake's containerd
commands against it, as root on this host (what `sudo` does on a builder)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bake.model.refs import parse_reference
from bake.references import references, reports_pinned
from bake.model.images import ResolvedImage
from bake.runtimes import Containerd
from bake.steps.pull import not_pinned

from criclient import CriClient
from support.ci import unavailable
from support.cli import ROOT
from support.local_shell import LocalShell

pytestmark = [pytest.mark.sandbox]

CONTAINERD17 = ROOT / ".tools/containerd-1.7/usr/bin/containerd"


@pytest.fixture(scope="module")
def containerd17(sandbox, tmp_path_factory):
    if not CONTAINERD17.exists():
        unavailable(f"{CONTAINERD17} is missing: `bash scripts/dev.sh setup` fetches it")
    d = tmp_path_factory.mktemp("containerd17")
    sock = d / "containerd.sock"
    (d / "config.toml").write_text(
        f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n'
        '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
    )
    log = (d / "containerd.log").open("w")
    proc = subprocess.Popen([str(CONTAINERD17), "--config", str(d / "config.toml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (d / "containerd.log").read_text()[-2000:]
            time.sleep(0.1)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_containerd_17_reports_every_baked_reference_pinned(sandbox, containerd17):
    digest = sandbox.push_image("env/cri-pinned", "v1", size_mb=1)
    image = ResolvedImage(parse_reference(f"{sandbox.info.registry}/env/cri-pinned:v1"), digest, None)
    runtime, conn = Containerd(containerd17), LocalShell()
    runtime.pull(conn, image, 120)
    image_id = runtime.add_references(conn, image, ["mirror.example.com/env/cri-pinned:v1"])
    wanted = {image.ref.original: references(image, ["mirror.example.com/env/cri-pinned:v1"], image_id,
                                             digest_aliases=True)}
    answer = runtime.lookup(conn, wanted[image.ref.original])
    assert answer.version.startswith("1.7.") and reports_pinned(answer.runtime, answer.version)
    assert all(found and found.id == image_id for found in answer.images.values()), answer.images
    assert not_pinned(answer, wanted) == []
    # the independent client sees the same: every name, pinned (the kubelet's GC leaves it)
    client = CriClient(containerd17)
    try:
        for ref in wanted[image.ref.original]:
            status = client.status(ref)
            assert status is not None and status.pinned, ref
    finally:
        client.close()


def test_an_image_without_the_pinned_label_is_named_by_the_pinned_check(sandbox, containerd17):
    """The control: pulled with the managed label only (as a plain CRI pull), 1.7 reports it
    unpinned, and the check verify runs on 1.7 names it."""
    digest = sandbox.push_image("env/cri-unpinned", "v1", size_mb=1)
    ref = f"{sandbox.info.registry}/env/cri-unpinned:v1"
    subprocess.run(["ctr", "--address", containerd17, "-n", "k8s.io", "images", "pull", "--hosts-dir",
                    "/etc/containerd/certs.d", "--label", "io.cri-containerd.image=managed", ref],
                   check=True, capture_output=True)
    image = ResolvedImage(parse_reference(ref), digest, None)
    runtime = Containerd(containerd17)
    wanted = {ref: references(image, [], None, digest_aliases=True)[:1]}
    assert not_pinned(runtime.lookup(LocalShell(), wanted[ref]), wanted) == [image.ref.canonical]
