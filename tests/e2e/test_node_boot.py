"""Today's EKS node, end to end: the builder boots as an EKS AL2023 AMI does (containerd 2.1
installed, stopped, not enabled); the bake starts it, bakes, and leaves it stopped; a node's
first boot (a fresh containerd with nodeadm's config over a copy of the disk) then finds every
image by every reference, pinned, without asking a registry. Run on containerd 2.1 and 1.7."""

from __future__ import annotations

import json

import pytest

from bake.model.lock import LockFile
from bake.model.refs import parse_reference
from bake.references import name_of

from support.cli import run_bake
from support.node_runtime import k8s_ctr
from support.sandbox_bakes import fresh_image, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]

MIRROR = "mirror.example.com/env/node-boot"  # an alias: the pods of one cluster use it


@pytest.fixture(scope="module", params=["2.1", "1.7"])
def node_version(request, sandbox):
    """The builder's containerd for this module's bakes; 2.1 again afterwards."""
    sandbox.node_containerd(version=request.param, boot="stopped")
    yield request.param
    sandbox.node_containerd(version="2.1", boot="stopped")


@pytest.fixture(scope="module")
def node_bake(sandbox, node_version, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"node-{node_version}")
    info = sandbox.info
    app = fresh_image(sandbox, 2, prefix="node-boot")
    sandbox.push_image(f"{info.ecr_registry}/env/node-boot-ecr", node_version.replace(".", "-"), size_mb=1)
    ecr = f"{info.ecr_registry}/env/node-boot-ecr:{node_version.replace('.', '-')}"
    cfg = write_config(d / "bake.toml", sandbox, {"node": {"images": [app, ecr], "aliases": {app: [MIRROR]}}})
    assert not sandbox.node_containerd_state()["running"]
    result = run_bake("build", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    entry = LockFile(d / "amis.lock.json").read().pools["node"].current
    return cfg, entry, events


def _references(entry) -> list[str]:
    """Every name the kubelet may ask for: tag, repo@digest, image id, each alias (and alias@digest)."""
    refs = []
    for img in entry.images:
        ref = parse_reference(img.ref)
        refs += [img.ref, f"{name_of(ref)}@{img.digest}", img.image_id]
        for alias in img.aliases or []:
            refs.append(alias)
            refs.append(f"{name_of(parse_reference(alias))}@{img.digest}")
    return refs


def test_the_bake_starts_the_stopped_runtime_and_leaves_it_stopped(sandbox, node_version, node_bake):
    cfg, entry, events = node_bake
    steps = [e["message"] for e in events if e.get("step") in ("runtime", "runtime-restore")]
    assert any("is not running (as on a fresh EKS AL2023 AMI): systemctl start containerd" in m for m in steps), steps
    assert any(m.startswith(f"containerd {node_version}.") for m in steps), steps
    assert any(m == "containerd stopped again, not enabled" for m in steps), steps
    state = sandbox.node_containerd_state()
    assert not state["running"] and not state["enabled"] and state["version"] == node_version
    assert entry.runtime_version.startswith(f"containerd {node_version}.")


def test_a_node_first_boot_finds_every_reference_pinned_without_a_pull(sandbox, node_version, node_bake):
    cfg, entry, events = node_bake
    refs = _references(entry)
    assert len(refs) == 2 * 3 + 2 and all(refs)
    boot = sandbox.first_boot(refs)
    assert boot.runtime.startswith(f"containerd {node_version}.")
    assert boot.missing() == [] and boot.unpinned() == []
    ids = {img.ref: img.image_id for img in entry.images}
    assert boot.images[entry.images[0].ref]["id"] == ids[entry.images[0].ref]
    assert boot.registry_requests == []  # no manifest or blob was fetched: nothing was pulled


def test_the_cache_is_in_the_nodes_shape_about_the_images_size(sandbox, node_bake):
    cfg, entry, events = node_bake
    [discarded] = [e for e in events if e.get("step") == "node-shape" and "discarded" in (e.get("data") or {})]
    assert discarded["data"]["discarded"] == 2  # one layer each
    # unpacked files only: before the discard this was about 2x (blob + unpacked copy)
    assert entry.cache_bytes <= 1.1 * entry.compressed_bytes, (entry.cache_bytes, entry.compressed_bytes)
    assert entry.cache_bytes >= 0.9 * entry.compressed_bytes


def test_a_builder_booted_with_containerd_running_leaves_it_running(sandbox, node_version, tmp_path):
    sandbox.node_containerd(boot="running")
    try:
        cfg = write_config(tmp_path / "bake.toml", sandbox, {"warm": {"images": [fresh_image(sandbox, 1, "node-warm")]}})
        result = run_bake("build", "--config", str(cfg), "--json")
        assert result.returncode == 0, result.stderr
        steps = [json.loads(line)["message"] for line in result.stdout.splitlines()
                 if json.loads(line).get("step") in ("runtime", "runtime-restore")]
        assert not any("systemctl start" in m for m in steps), steps
        assert "containerd left running, not enabled" in steps
        assert sandbox.node_containerd_state()["running"]
    finally:
        sandbox.node_containerd(boot="stopped")
    assert not sandbox.node_containerd_state()["running"]


def test_negative_control_an_image_pulled_by_tag_alone_is_not_found_by_digest_at_first_boot(sandbox, node_version):
    """What the bake's naming prevents: `ctr images pull` names an image by tag only, so a node
    whose pod asks for repo@digest would pull it (the first-boot check must be able to say so)."""
    ref = fresh_image(sandbox, 1, prefix="node-tag-only")
    digest = sandbox.info.digests[ref]
    k8s_ctr(sandbox, "images", "pull", "--hosts-dir", "/etc/containerd/certs.d",
            "--label", "io.cri-containerd.image=managed", ref)
    by_digest = f"{name_of(parse_reference(ref))}@{digest}"
    try:
        boot = sandbox.first_boot([ref, by_digest])
        assert boot.images[ref] is not None
        assert boot.missing() == [by_digest]
        assert not boot.images[ref]["pinned"]  # no pinned label: the kubelet's GC may remove it
    finally:
        sandbox.discard_pushed([ref])
