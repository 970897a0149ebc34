"""End to end in the sandbox: moto server, real sshd, real containerd and dockerd, real TLS
registries including the ECR look-alike."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bake import tags
from bake.model.lock import LockFile

from support import karpenter_crd
from support.cli import run_bake
from support.node_runtime import node_ctr
from support.sandbox_bakes import in_builder, leftovers, write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]


def ctr_images(sandbox, namespace: str = "k8s.io") -> dict[str, tuple[str, str]]:
    out = node_ctr(sandbox, "-n", namespace, "images", "ls").stdout
    rows = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        rows[cols[0]] = (cols[2], cols[-1])
    return rows


def instances_launched(ec2) -> int:
    res = ec2.describe_instances(Filters=[{"Name": f"tag:{tags.KEY_TOOL}", "Values": [tags.TOOL]}])
    return sum(len(r["Instances"]) for r in res["Reservations"])


@pytest.fixture(scope="module")
def containerd_bake(sandbox, tmp_path_factory):
    """One fresh containerd bake of the sample images plus the ECR image, shared by the
    tests that inspect its result."""
    d = tmp_path_factory.mktemp("containerd")
    info = sandbox.info
    # A freshly pushed image makes the fingerprint new, even against a long-lived sandbox.
    sandbox.push_image("env/e2e-fresh", "v1", size_mb=1)
    images = info.images[:4] + info.ecr_images[:1] + [f"{info.registry}/env/e2e-fresh:v1"]
    cfg = write_config(d / "bake.toml", sandbox, {"cpu": {"images": images, "runtime": "containerd"}})
    host_before = host_files()
    # The overlay outlives bakes (an earlier scrub's deletions stay): plant what this bake's
    # scrub must remove, so the test sees this bake's clean-up and not an older one.
    in_builder(sandbox, PLANT)
    result = run_bake("build", "--config", str(cfg))
    assert host_files() == host_before, "the bake's clean-up touched the host's own files"
    return d, cfg, images, result


PLANTED = ["/etc/ssh/ssh_host_planted_key", "/root/.bash_history", "/root/.docker/config.json",
           "/etc/hostname", "/etc/resolv.conf", "/var/lib/cloud/instance/planted", "/var/log/planted.log.1"]
PLANT = "; ".join([f"mkdir -p {Path(p).parent} && echo planted > {p}" for p in PLANTED]
                  + ["echo planted > /etc/machine-id", "echo planted > /var/log/planted.log"])


def still_on_builder(sandbox, paths: list[str]) -> list[str]:
    out = in_builder(sandbox, "; ".join(f"[ -e {p} ] && echo {p}" for p in paths) + "; true")
    return out.split()


def host_files() -> dict[str, bytes | None]:
    """The host's files a scrub removes on a builder (it must not, here: the builder is an overlay)."""
    paths = ["/etc/machine-id", "/etc/hostname", "/etc/resolv.conf", *map(str, Path("/etc/ssh").glob("ssh_host_*"))]
    return {p: Path(p).read_bytes() if Path(p).exists() else None for p in paths}


def test_fresh_bake_records_ami_with_resolved_digests(sandbox, ec2, containerd_bake):
    d, cfg, images, result = containerd_bake
    assert result.returncode == 0, result.stderr
    entry = LockFile(d / "amis.lock.json").read().pools["cpu"].current
    assert [i.ref for i in entry.images] == images
    from bake_sandbox.images import registry_digest

    ecr_auth = sandbox.ecr_credentials()
    for img in entry.images:
        auth = ecr_auth if img.ref.startswith(sandbox.info.ecr_registry) else None
        assert img.digest == registry_digest(img.ref, auth)
    assert len({img.digest for img in entry.images}) == len(images), "sample images must differ"
    image = ec2.describe_images(ImageIds=[entry.ami_id])["Images"][0]
    assert image["State"] == "available"
    t = tags.from_aws(image["Tags"])
    assert t[tags.KEY_FINGERPRINT] == entry.fingerprint
    assert t[tags.KEY_POOL] == "cpu"
    assert t[tags.KEY_BASE_AMI] == entry.base_ami == sandbox.info.base_ami
    assert any(v.endswith(entry.images[0].digest) for k, v in t.items() if k.startswith(tags.KEY_IMAGE_PREFIX))
    assert f"cpu\tbake\t{entry.ami_id}" in result.stdout


def test_images_are_in_k8s_namespace_labelled_for_the_kubelet(sandbox, containerd_bake):
    d, cfg, images, result = containerd_bake
    entry = LockFile(d / "amis.lock.json").read().pools["cpu"].current
    rows = ctr_images(sandbox)
    from bake.model.refs import parse_reference

    for img in entry.images:
        digest, labels = rows[parse_reference(img.ref).canonical]
        assert digest == img.digest
        assert "io.cri-containerd.image=managed" in labels
        assert "io.cri-containerd.pinned=pinned" in labels


def test_scrub_ran_on_the_builder_and_not_on_the_host(sandbox, containerd_bake):
    # what was planted on the builder before this bake is gone, machine-id and logs emptied
    assert still_on_builder(sandbox, PLANTED) == []
    assert in_builder(sandbox, "cat /etc/machine-id /var/log/planted.log") == ""
    # files of the base image (the lower layer) are deleted as whiteouts; the host keeps its own
    assert {"/etc/hostname", "/etc/resolv.conf"} <= set(sandbox.deleted_paths())
    # the host kept its own (compared byte for byte around the bake in the fixture)
    assert list(Path("/etc/ssh").glob("ssh_host_*")), "the host's SSH host keys must stay"
    assert Path("/etc/resolv.conf").exists()


def test_second_run_skips_without_launching(sandbox, ec2, containerd_bake):
    d, cfg, images, first = containerd_bake
    assert first.returncode == 0
    lock_before = (d / "amis.lock.json").read_text()
    launched = instances_launched(ec2)
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "\tskip\t" in result.stdout
    assert instances_launched(ec2) == launched
    assert (d / "amis.lock.json").read_text() == lock_before


def test_plan_shows_digests_and_skip(sandbox, containerd_bake):
    d, cfg, images, first = containerd_bake
    result = run_bake("plan", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)["pools"][0]
    assert plan["action"] == "skip" and plan["base_ami"] == sandbox.info.base_ami
    assert [i["ref"] for i in plan["images"]] == images


def test_lost_lock_is_rebuilt_from_fingerprint_tag(sandbox, ec2, containerd_bake):
    d, cfg, images, first = containerd_bake
    ami = LockFile(d / "amis.lock.json").read().pools["cpu"].current.ami_id
    lost = d / "lost"
    lost.mkdir()
    launched = instances_launched(ec2)
    result = run_bake("build", "--config", str(cfg), "--lock", str(lost / "amis.lock.json"))
    assert result.returncode == 0, result.stderr
    assert LockFile(lost / "amis.lock.json").read().pools["cpu"].current.ami_id == ami
    assert instances_launched(ec2) == launched


KARPENTER_TABLE = """
[pools.cpu.launch_template]
volume_initialization_rate = 200
[pools.cpu.karpenter]
role = "KarpenterNodeRole-sandbox"
subnet_selector_terms = [{ tags = { "karpenter.sh/discovery" = "sandbox" } }]
security_group_selector_terms = [{ tags = { "karpenter.sh/discovery" = "sandbox" } }]
"""


def test_karpenter_node_class_from_the_bakes_lock(sandbox, ec2, containerd_bake, tmp_path):
    """`bake karpenter` over a real bake's lock: Karpenter's CRD accepts it, and it names the AMI
    with the AMI's own root device and root snapshot, as EC2 (moto) describes them."""
    d, cfg, images, first = containerd_bake
    entry = LockFile(d / "amis.lock.json").read().pools["cpu"].current
    image = ec2.describe_images(ImageIds=[entry.ami_id])["Images"][0]
    # The lock does not record the AMI's root device: the pool names it (device_name; EKS's AMIs
    # use /dev/xvda, moto's stand-in /dev/sda1), as for its launch template.
    mine = tmp_path / "bake.toml"
    mine.write_text(cfg.read_text() + 'launch = "none"\n' + KARPENTER_TABLE.replace(
        "volume_initialization_rate = 200", f"volume_initialization_rate = 200\ndevice_name = {json.dumps(image['RootDeviceName'])}"))
    result = run_bake("karpenter", "cpu", "--config", str(mine), "--lock", str(d / "amis.lock.json"),
                      "--out", str(tmp_path / "k8s"))
    assert result.returncode == 0, result.stderr
    (doc,) = [x for x in yaml.safe_load_all((tmp_path / "k8s" / "cpu.yaml").read_text()) if x]
    assert karpenter_crd.errors(doc) == []
    (root,) = [m for m in image["BlockDeviceMappings"] if m["DeviceName"] == image["RootDeviceName"]]
    assert doc["spec"]["amiSelectorTerms"] == [{"id": entry.ami_id}]
    (mapping,) = doc["spec"]["blockDeviceMappings"]
    assert mapping["deviceName"] == image["RootDeviceName"]
    assert mapping["ebs"]["snapshotID"] == root["Ebs"]["SnapshotId"]
    assert mapping["ebs"]["volumeSize"] == f"{root['Ebs']['VolumeSize']}Gi"
    assert mapping["ebs"]["volumeInitializationRate"] == 200


def test_changed_image_rebakes_and_keeps_history(sandbox, tmp_path):
    repo, tag = "env/e2e-changing", "v1"
    sandbox.push_image(repo, tag, size_mb=1)
    ref = f"{sandbox.info.registry}/{repo}:{tag}"
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"changing": {"images": [ref], "launch": "none"}})
    cfg.write_text(cfg.read_text() + KARPENTER_TABLE.replace("pools.cpu", "pools.changing"))
    assert run_bake("build", "--config", str(cfg)).returncode == 0
    first = LockFile(tmp_path / "amis.lock.json").read().pools["changing"].current
    (tmp_path / "base.lock.json").write_text((tmp_path / "amis.lock.json").read_text())
    new_digest = sandbox.push_image(repo, tag, size_mb=1)  # same tag, new content
    assert new_digest != first.images[0].digest
    result = run_bake("build", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(e["kind"] == "pool.done" for e in events)
    pool = LockFile(tmp_path / "amis.lock.json").read().pools["changing"]
    assert pool.current.images[0].digest == new_digest
    assert pool.current.ami_id != first.ami_id
    assert [h.ami_id for h in pool.history] == [first.ami_id]
    # The pool's EC2NodeClass moves with the rebake: the review shows its AMI and root snapshot change.
    (tmp_path / "plan.json").write_text('{"format_version": "1.2", "resource_changes": []}')
    review = run_bake("review", "--plan", str(tmp_path / "plan.json"), "--base-lock", str(tmp_path / "base.lock.json"),
                      "--lock", str(tmp_path / "amis.lock.json"), "--config", str(cfg))
    assert review.returncode == 0, review.stderr
    assert f"-  - id: {first.ami_id}\n+  - id: {pool.current.ami_id}\n" in review.stdout
    assert (f"-      snapshotID: {first.snapshot_ids[0]}\n+      snapshotID: {pool.current.snapshot_ids[0]}\n"
            in review.stdout)


def test_docker_runtime_bake(sandbox, tmp_path):
    info = sandbox.info
    sandbox.push_image("env/e2e-docker-fresh", "v1", size_mb=1)  # a new fingerprint: this bake launches
    images = [info.images[0], info.ecr_images[0], f"{info.registry}/env/e2e-docker-fresh:v1"]
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"legacy": {"images": images, "runtime": "docker"}})
    in_builder(sandbox, "mkdir -p /root/.docker && echo planted > /root/.docker/config.json")
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    entry = LockFile(tmp_path / "amis.lock.json").read().pools["legacy"].current
    assert entry.runtime == "docker"
    for img in entry.images:
        out = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", img.ref],
                             capture_output=True, text=True, check=True).stdout
        assert any(d.endswith(img.digest) for d in json.loads(out))
    # docker login wrote credentials on the builder (over the planted file); the scrub removed them
    assert still_on_builder(sandbox, ["/root/.docker/config.json"]) == []


def test_missing_image_fails_the_bake_before_launching(sandbox, ec2, tmp_path):
    ref = f"{sandbox.info.registry}/env/does-not-exist:v1"
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"cpu": {"images": [ref]}})
    launched = instances_launched(ec2)
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 1
    assert ref in result.stderr
    assert "MANIFEST_UNKNOWN" in result.stderr.upper() or "not found" in result.stderr.lower()
    assert instances_launched(ec2) == launched
    assert not (tmp_path / "amis.lock.json").exists()


def test_bad_base_ami_is_a_usage_error_and_launches_nothing(sandbox, ec2, tmp_path):
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"cpu": {"images": sandbox.info.images[:1], "base_ami": "ami-0000000000000dead"}})
    launched = instances_launched(ec2)
    result = run_bake("build", "--config", str(cfg))
    assert result.returncode == 2
    assert "ami-0000000000000dead" in result.stderr and "does not exist" in result.stderr
    result = run_bake("build", "--config", str(write_config(tmp_path / "b2.toml", sandbox, {
        "cpu": {"images": sandbox.info.images[:1], "base_ami": "ssm:/no/such/parameter"}})))
    assert result.returncode == 2 and "/no/such/parameter" in result.stderr
    assert instances_launched(ec2) == launched
    assert leftovers(ec2)["instances"] == []
