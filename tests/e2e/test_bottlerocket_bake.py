"""An os = "bottlerocket" pool end to end (issue 24 item 3), through the sandbox's stand-ins
(bake_sandbox/bottlerocket.py): the bake logs into an "admin container" whose view has no ctr,
no containerd and no containerd socket, and reaches them only through `sudo sheltie` (a stand-in
entering the builder's mount namespace, "the host"); the builder's data volume is prepared at
launch as Bottlerocket's boot would, stopped before its snapshot, and a node from the snapshot
finds every image pinned without a pull. Negative controls: the admin view itself cannot reach
containerd, and the same bake with the sheltie prefix taken out fails."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from bake import bottlerocket as product
from bake import image_store, tags
from bake.build import Baker
from bake.data_volume import DEVICE
from bake.model.config import load_config
from bake.model.lock import LockFile
from bake.progress import NullReporter
from bake.runtimes import Containerd2, StoreContainerd
from bake.ssh import Result, UnexpectedExit, sudo
from bake_sandbox import bottlerocket, node_containerd
from criclient import CriClient
from support.cli import run_bake
from support.node_runtime import k8s_ctr, node_runtime
from support.sandbox_bakes import fresh_image, in_builder, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


def br_pool(sandbox, images: list[str]) -> dict:
    return {"images": images, "os": "bottlerocket", "cache": "data-volume",
            "ssh_host": bottlerocket.admin_ssh_host(sandbox.layout)}


def kubelet_stops(sandbox) -> int:
    log = sandbox.layout.run_dir / "kubelet.log"  # the systemctl stand-in's record
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(scope="module")
def br_bake(sandbox, tmp_path_factory):
    stops = kubelet_stops(sandbox)
    d = tmp_path_factory.mktemp("bottlerocket")
    app = fresh_image(sandbox, 2, prefix="bottlerocket")
    cfg = write_config(d / "bake.toml", sandbox, {"br": br_pool(sandbox, [app])})
    result = run_bake("build", "--config", str(cfg), "--pool", "br", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    entry = LockFile(d / "amis.lock.json").read().pools["br"].current
    assert kubelet_stops(sandbox) == stops + 1  # through sheltie, before the pulls
    return cfg, entry, events


def in_admin(sandbox, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` as root in the admin container's mount namespace, with sudo's PATH there."""
    pid = bottlerocket.daemon(sandbox.layout).pid()
    assert pid, "the admin container stand-in's sshd is not running"
    path = f"{node_containerd.bin_dir(sandbox.layout)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", "env", f"PATH={path}", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


class AdminSession:
    """What the bake's connection does on a Bottlerocket pool, without the SSH: each command
    rewritten by ``on_host`` and run in the admin container's view (as root; the bake's user
    gets there with sudo)."""

    def __init__(self, sandbox):
        self.sandbox = sandbox

    def run(self, command: str, warn: bool = False, **_: object) -> Result:
        r = in_admin(self.sandbox, product.on_host(command))
        res = Result(command=command, stdout=r.stdout, stderr=r.stderr, exited=r.returncode)
        if not res.ok and not warn:
            raise UnexpectedExit(res, command)
        return res


def test_the_hosts_path_has_bottlerocket_tools_only(sandbox):
    """The sheltie stand-in's host PATH: what a Bottlerocket host has, and not what it lacks."""
    for tool in ("du", "df", "findmnt", "mktemp", "ctr", "uname"):
        assert in_admin(sandbox, f"sheltie {tool} --version").returncode == 0, tool
    assert in_admin(sandbox, "sheltie systemctl is-active kubelet").stdout.strip() == "inactive"
    for tool in ("sh", "bash", "awk", "sed", "python3"):
        r = in_admin(sandbox, f"sheltie {tool} --version")
        assert r.returncode == 127, (tool, r)


def test_the_store_view_through_sheltie_answers_as_the_cri_does(sandbox):
    """image_store's answer, read through the sheltie stand-in with the host's ctr, against an
    independent CRI client (grpcio) on the same containerd: the same id, digests and pin for a
    tag, a digest, an image id and an absent name. Negative control: the CRI client the bake
    runs elsewhere needs python3, which the host does not have."""
    app = fresh_image(sandbox, 1, prefix="bottlerocket-store")
    session = AdminSession(sandbox)
    with node_runtime(sandbox):
        k8s_ctr(sandbox, "images", "pull", "--hosts-dir", "/etc/containerd/certs.d",
                "--label", "io.cri-containerd.image=managed", "--label", "io.cri-containerd.pinned=pinned", app)
        target = next(line.split()[2] for line in k8s_ctr(sandbox, "images", "ls").splitlines() if line.startswith(app + " "))
        digested = f"{app.rpartition(':')[0]}@{target}"
        k8s_ctr(sandbox, "images", "tag", app, digested)
        cri = CriClient()
        try:
            image_id = cri.status(app).id
            refs = [app, digested, image_id, f"{sandbox.info.registry}/bottlerocket-store/absent:v1"]
            store = image_store.lookup(session, StoreContainerd().ctr, refs)  # type: ignore[arg-type]
            for ref in refs:
                want = cri.status(ref)
                got = store.images[ref]
                assert (got is None) == (want is None), ref
                if want:
                    assert (got.id, set(got.repo_digests), got.pinned) == (want.id, set(want.repo_digests), want.pinned), ref
            assert store.version and store.version in cri.version()
        finally:
            cri.close()
        with pytest.raises(UnexpectedExit) as failed:
            Containerd2().lookup(session, [app])  # type: ignore[arg-type]
        assert "python3" in failed.value.result.stderr


def test_the_admin_view_reaches_containerd_only_through_sheltie(sandbox):
    """The stand-in's negative control: without sheltie no ctr, no containerd, no socket."""
    for script in ("ctr --version", "containerd --version"):
        alone = in_admin(sandbox, script)
        assert alone.returncode == 127 and "command not found in the admin container" in alone.stderr, (script, alone)
        through = in_admin(sandbox, f"sheltie {script}")
        assert through.returncode == 0, (script, through.stderr)
    # containerd's socket folder is an empty tmpfs in the admin view, the host's in sheltie's
    run = in_admin(sandbox, "findmnt -rno FSTYPE --mountpoint /run/containerd; ls -A /run/containerd")
    assert run.stdout.split() == ["tmpfs"], run
    assert "tmpfs" not in in_admin(sandbox, "sheltie findmnt -rno FSTYPE --mountpoint /run/containerd").stdout


def test_a_bottlerocket_bake_snapshots_its_data_volume_through_the_admin_container(sandbox, ec2, br_bake):
    cfg, entry, events = br_bake
    run_id = next(e["data"]["run_id"] for e in events if e.get("kind") == "pool.start")
    run_tag = [{"Name": f"tag:{tags.KEY_RUN}", "Values": [run_id]}]
    assert ec2.describe_images(Owners=["self"], Filters=run_tag)["Images"] == []
    [snap] = ec2.describe_snapshots(OwnerIds=["self"], Filters=run_tag)["Snapshots"]
    assert tags.from_aws(snap["Tags"])[tags.KEY_ROLE] == "cache-snapshot"
    assert (entry.cache, entry.cache_snapshot_id, entry.data_device) == ("data-volume", snap["SnapshotId"], DEVICE)
    steps = [e.get("step") for e in events]
    assert "data-volume" not in steps  # no mkfs or mount of the bake's own
    # Bottlerocket runs containerd from boot: the bake finds it running and leaves it so (its stop is the shutdown's)
    [runtime] = [e for e in events if e.get("step") == "runtime" and (e.get("data") or {}).get("found")]
    assert runtime["data"]["found"] == "running", runtime
    assert not any("stopped again" in e.get("message", "") for e in events if e.get("step") == "runtime-restore")
    # verified and pinned by the image store's answer (no CRI client runs on the host)
    verified = [e["message"] for e in events if e.get("step") == "verify"]
    assert sum(m.startswith(StoreContainerd.verifier) for m in verified) == 2, verified
    assert any("stopping builder" in e.get("message", "") for e in events if e.get("step") == "cache-snapshot")
    # The builder's user data enabled the admin container (what the sandbox's boot stand-in keys on).
    [builder] = [i for r in ec2.describe_instances(Filters=run_tag)["Reservations"] for i in r["Instances"]]
    got = ec2.describe_instance_attribute(InstanceId=builder["InstanceId"], Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(got).decode() == product.ADMIN_USER_DATA
    # The builder's shutdown unmounted its volume in the host's view.
    assert "/dev/loop" not in in_builder(sandbox, "findmnt -rno SOURCE --mountpoint /var/lib/containerd || true")


def test_a_node_from_the_bottlerocket_snapshot_finds_the_image_pinned_without_a_pull(sandbox, br_bake):
    cfg, entry, events = br_bake
    [img] = entry.images
    refs = [img.ref, img.image_id]
    boot = sandbox.first_boot_from_snapshot(entry.cache_snapshot_id, refs)
    assert boot.missing() == [] and boot.unpinned() == [] and boot.registry_requests == []
    assert boot.volume_label == bottlerocket.STANDIN_LABEL  # the volume the boot stand-in prepared, not one of ours


def test_the_same_bake_without_the_sheltie_prefix_fails_in_the_admin_view(sandbox, ec2, tmp_path, monkeypatch):
    app = fresh_image(sandbox, 1, prefix="bottlerocket-neg")
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"br": br_pool(sandbox, [app])})
    monkeypatch.setattr(product, "on_host", lambda command: command)  # what the connection applies
    assert product.on_host(sudo("true")) == sudo("true")
    lock = LockFile(tmp_path / "amis.lock.json")
    with NullReporter() as reporter:
        baker = Baker(load_config(cfg), lock, reporter)
        [outcome] = baker.build()
    # the admin container has no containerd unit: the runtime cannot even be started there
    assert outcome.error and "systemctl start containerd" in outcome.error, outcome.error
    assert not lock.path.exists()
    run_tag = [{"Name": f"tag:{tags.KEY_RUN}", "Values": [baker.run_dir.path.name]}]
    assert ec2.describe_snapshots(OwnerIds=["self"], Filters=run_tag)["Snapshots"] == []
    [builder] = [i for r in ec2.describe_instances(Filters=run_tag)["Reservations"] for i in r["Instances"]]
    assert builder["State"]["Name"] == "terminated"  # the run did launch a builder: the failure is in it
    assert "/dev/loop" not in in_builder(sandbox, "findmnt -rno SOURCE --mountpoint /var/lib/containerd || true")
