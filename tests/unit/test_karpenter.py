"""`python -m bake karpenter`: each pool's EC2NodeClass, held to Karpenter's own CRD (its schema and
its CEL rules: tests/support/karpenter_crd.py), in both cache modes; bad input exits 2 naming
what is wrong and writes nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bake.cli import main
from bake.model.lock import ImageDigest, LockEntry, LockFile

from support import karpenter_crd as crd

KARPENTER = """
[pools.{pool}.karpenter]
role = "KarpenterNodeRole-prod"
subnet_selector_terms = [{ tags = { "karpenter.sh/discovery" = "prod" } }]
security_group_selector_terms = [{ id = "sg-0abc" }, { tags = { "karpenter.sh/discovery" = "prod" } }]
"""


EKS_SSM = "ssm:/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"


def write(tmp_path: Path, pool_keys: str = "", karpenter: str | None = KARPENTER, pool: str = "cpu",
          base_ami: str = EKS_SSM, baked: bool = True, **entry_keys) -> Path:
    """bake.toml with one pool (its keys, its [karpenter] table) and, when ``baked``, its lock entry.
    Karpenter launches the nodes: launch = "none" (no ASG here), its launch_template keys still read."""
    cfg = tmp_path / "bake.toml"
    cfg.write_text(f'region = "us-east-1"\n[pools.{pool}]\nbase_ami = "{base_ami}"\nimages = ["quay.io/org/env:rev9"]\n'
                   f'launch = "none"\n{pool_keys}\n' + (karpenter.replace("{pool}", pool) if karpenter else ""))
    if baked:
        entry = LockEntry(**{"ami_id": "ami-0123456789abcdef0", "region": "us-east-1", "fingerprint": "sha256:f1",
                             "base_ami": "ami-0aaaaaaaaaaaaaaaa", "built_at": "2026-12-07T00:00:00Z",
                             "images": [ImageDigest(ref="quay.io/org/env:rev9", digest="sha256:" + "a" * 64)],
                             "snapshot_ids": ["snap-0123456789abcdef0"], "snapshot_gib": 40, **entry_keys})
        LockFile(tmp_path / "amis.lock.json").update(pool, lambda old: old.promoted(entry))
    return cfg


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["karpenter", *args])
    out, err = capsys.readouterr()
    return code, out, err


def manifests(out: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(out) if d is not None]


def test_the_crd_rules_all_run_here():
    """Every CEL rule of the CRD runs: with the CEL runtime and its strings extension, or (only
    those calling Kubernetes' `find`) with the stand-in; none is skipped."""
    rules = crd.rules()
    assert rules.count == 44 and rules.skipped == []
    assert len(rules.stand_in) == 6 and all(".find(" in r for r in rules.stand_in)


def test_ami_mode_by_id_with_the_root_snapshot_and_its_rate(tmp_path, capsys):
    cfg = write(tmp_path, "[pools.cpu.launch_template]\nvolume_initialization_rate = 200\nroot_volume_size = 60\n")
    code, out, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "cpu" and spec["amiFamily"] == "AL2023"
    assert spec["amiSelectorTerms"] == [{"id": "ami-0123456789abcdef0"}]
    assert spec["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {
        "volumeType": "gp3", "deleteOnTermination": True, "snapshotID": "snap-0123456789abcdef0",
        "volumeSize": "60Gi", "iops": 3000, "throughput": 125, "volumeInitializationRate": 200}}]
    assert spec["role"] == "KarpenterNodeRole-prod" and "instanceProfile" not in spec
    assert spec["tags"] == {"bake:pool": "cpu"}


def test_ami_mode_by_the_published_ssm_parameter(tmp_path, capsys):
    cfg = write(tmp_path, '[pools.cpu.distribute]\nssm_parameter = "/eks/nodes/cpu"\n')
    code, out, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    assert doc["spec"]["amiSelectorTerms"] == [{"ssmParameter": "/eks/nodes/cpu"}]
    # The parameter moves to the next AMI: no snapshot of this one in the mapping, its size instead.
    assert "snapshotID" not in doc["spec"]["blockDeviceMappings"][0]["ebs"]
    assert doc["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "40Gi"


def test_data_volume_mode_stock_ami_and_the_cache_snapshot(tmp_path, capsys):
    cfg = write(tmp_path, 'cache = "data-volume"\n[pools.cpu.launch_template]\nvolume_initialization_rate = 300\n',
                cache="data-volume", cache_snapshot_id="snap-0cache0000000000", data_device="/dev/xvdb",
                snapshot_ids=[])
    code, out, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    spec = doc["spec"]
    assert spec["amiSelectorTerms"] == [
        {"ssmParameter": "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/recommended/image_id"}]
    assert spec["blockDeviceMappings"] == [{"deviceName": "/dev/xvdb", "ebs": {
        "volumeType": "gp3", "deleteOnTermination": True, "snapshotID": "snap-0cache0000000000",
        "iops": 3000, "throughput": 125, "volumeInitializationRate": 300}}]
    # AL2023: the user data mounts the cache volume at containerd's root (docs/data-volume.md)
    assert "Where=/var/lib/containerd" in spec["userData"] and "multipart/mixed" in spec["userData"]


def test_bottlerocket_data_volume_by_base_ami_id_is_the_kubelets_root(tmp_path, capsys):
    cfg = write(tmp_path, 'cache = "data-volume"\nos = "bottlerocket"\n[pools.cpu.launch_template]\nroot_volume_size = 4\n',
                base_ami="ami-0bbbbbbbbbbbbbbbb", cache="data-volume", cache_snapshot_id="snap-0cache0000000000",
                data_device="/dev/xvdb")
    code, out, err = run(capsys, "--all", "--config", str(cfg))
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    spec = doc["spec"]
    assert spec["amiFamily"] == "Bottlerocket" and spec["amiSelectorTerms"] == [{"id": "ami-0aaaaaaaaaaaaaaaa"}]
    root, data = spec["blockDeviceMappings"]
    assert (root["deviceName"], root["ebs"]["volumeSize"], "rootVolume" in root) == ("/dev/xvda", "4Gi", False)
    assert (data["deviceName"], data["rootVolume"]) == ("/dev/xvdb", True)


def test_out_writes_one_file_per_pool(tmp_path, capsys):
    cfg = write(tmp_path)
    code, out, err = run(capsys, "--all", "--config", str(cfg), "--out", str(tmp_path / "k8s"))
    assert code == 0, err
    (doc,) = manifests((tmp_path / "k8s" / "cpu.yaml").read_text())
    assert crd.errors(doc) == [] and doc["spec"]["amiSelectorTerms"] == [{"id": "ami-0123456789abcdef0"}]
    assert [p.name for p in (tmp_path / "k8s").iterdir()] == ["cpu.yaml"]


# The validation itself must be able to fail: Karpenter's own refusals.
def _valid(tmp_path, capsys) -> dict:
    code, out, err = run(capsys, "cpu", "--config", str(write(
        tmp_path, "[pools.cpu.launch_template]\nvolume_initialization_rate = 200\n")))
    assert code == 0, err
    return manifests(out)[0]


@pytest.mark.parametrize("spoil, refusal", [
    (lambda s: s["blockDeviceMappings"][0]["ebs"].pop("snapshotID"), "snapshotID must be set when volumeInitializationRate"),
    (lambda s: s["amiSelectorTerms"][0].update(id="ami-XYZ"), "does not match 'ami-[0-9a-z]+'"),
    (lambda s: s["blockDeviceMappings"][0]["ebs"].update(volumeInitializationRate=500), "500 is greater than the maximum"),
    (lambda s: s.update(instanceProfile="p"), "must specify exactly one of ['role', 'instanceProfile']"),
    (lambda s: s.pop("amiFamily"), "must specify amiFamily"),
    (lambda s: s["amiSelectorTerms"].append({"alias": "al2@latest"}), "'alias' is mutually exclusive"),
    (lambda s: s["blockDeviceMappings"][0]["ebs"].update(volumeSize="60"), "does not match"),
    (lambda s: s["blockDeviceMappings"][0]["ebs"].update(sizeGiB=60), "Additional properties are not allowed"),
    (lambda s: s["tags"].update({"karpenter.sh/nodepool": "x"}), "restricted tag matching karpenter.sh/nodepool"),
    (lambda s: s.update(amiSelectorTerms=[{"alias": "al2023@latest"}], amiFamily="AL2"), "amiFamily must be 'AL2023'"),
])
def test_negative_controls_fail_the_validation(tmp_path, capsys, spoil, refusal):
    doc = _valid(tmp_path, capsys)
    assert crd.errors(doc) == []
    bad = copy.deepcopy(doc)
    spoil(bad["spec"])
    found = crd.errors(bad)
    assert any(refusal in e for e in found), found


@pytest.mark.parametrize("pool_keys, karpenter, entry, message", [
    ("", None, {}, "pools.cpu.karpenter: missing: add a [pools.cpu.karpenter] table"),
    ("", KARPENTER, {"baked": False}, "no current entry in the lock file"),
    ("", '[pools.{pool}.karpenter]\nrole = "r"\nsubnet_selector_terms = [{ id = "subnet-1" }]\n', {},
     "missing required key 'security_group_selector_terms'"),
    ("", KARPENTER.replace('role = "KarpenterNodeRole-prod"', 'role = "a"\ninstance_profile = "b"'), {},
     "exactly one of role or instance_profile"),
    ("", KARPENTER.replace('id = "sg-0abc"', 'id = "sg-0abc", name = "x"'), {}, "exactly one of id, name or tags"),
    ("", KARPENTER + 'tags = { "kubernetes.io/cluster/prod" = "owned" }\n', {}, "Karpenter sets it itself"),
    ("", KARPENTER + 'ami_selectr = "id"\n', {}, "unknown key 'ami_selectr' (did you mean 'ami_selector'?)"),
    ('[pools.cpu.distribute]\nssm_parameter = "/eks/nodes/cpu"\n[pools.cpu.launch_template]\n'
     "volume_initialization_rate = 200\n", KARPENTER, {}, 'ami_selector = "id"'),
    ("", KARPENTER, {"snapshot_ids": []}, "root volume's size is unknown"),
    ("root_volume_size = 20\n", KARPENTER, {}, "smaller than the AMI's root volume (40 GiB)"),
    ('cache = "data-volume"\n', KARPENTER, {}, "baked with cache = 'ami'"),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, pool_keys, karpenter, entry, message):
    cfg = write(tmp_path, pool_keys, karpenter, **entry)
    code, out, err = run(capsys, "cpu", "--config", str(cfg), "--out", str(tmp_path / "k8s"))
    assert code == 2, (out, err)
    assert message in err
    assert not (tmp_path / "k8s").exists()


def test_a_pool_name_that_is_no_kubernetes_name_needs_name(tmp_path, capsys):
    cfg = write(tmp_path, pool="gpu_a")
    code, _, err = run(capsys, "gpu_a", "--config", str(cfg))
    assert code == 2 and "'gpu_a' is not a Kubernetes object name" in err
    cfg.write_text(cfg.read_text() + 'name = "gpu-a"\n')
    code, out, err = run(capsys, "gpu_a", "--config", str(cfg))
    assert code == 0, err
    (doc,) = manifests(out)
    assert doc["metadata"]["name"] == "gpu-a" and doc["spec"]["tags"] == {"bake:pool": "gpu_a"}


def test_usage_errors(tmp_path, capsys):
    cfg = write(tmp_path)
    assert run(capsys, "--config", str(cfg))[0] == 2
    code, _, err = run(capsys, "gpu", "--config", str(cfg))
    assert code == 2 and "no pool named 'gpu'" in err
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "cpu", "--config", str(cfg), "--out", str(tmp_path / "file"))
    assert code == 2 and "not a directory" in err
    code, _, err = run(capsys, "--all", "--config", str(write(tmp_path, karpenter=None)))
    assert code == 2 and "no pool has a [pools.NAME.karpenter] table" in err


def test_a_rebake_changes_the_ids_and_review_shows_the_diff(tmp_path, capsys):
    cfg = write(tmp_path, "[pools.cpu.launch_template]\nvolume_initialization_rate = 200\n")
    base = tmp_path / "base.lock.json"
    base.write_text((tmp_path / "amis.lock.json").read_text())
    code, before, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    rebaked = LockFile(tmp_path / "amis.lock.json").read().pools["cpu"].current.model_copy(update={
        "ami_id": "ami-0fedcba9876543210", "snapshot_ids": ["snap-0fedcba9876543210"], "fingerprint": "sha256:f2",
        "built_at": "2026-12-08T00:00:00Z"})
    LockFile(tmp_path / "amis.lock.json").update("cpu", lambda old: old.promoted(rebaked))
    code, after, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    (new,) = manifests(after)
    assert crd.errors(new) == []
    changed = {(o, n) for o, n in zip(before.splitlines(), after.splitlines()) if o != n}
    assert changed == {("  - id: ami-0123456789abcdef0", "  - id: ami-0fedcba9876543210"),
                       ("      snapshotID: snap-0123456789abcdef0", "      snapshotID: snap-0fedcba9876543210"),
                       ("    eks-image-bake/fingerprint: sha256:f1", "    eks-image-bake/fingerprint: sha256:f2"),
                       ("    eks-image-bake/built-at: '2026-12-07T00:00:00Z'", "    eks-image-bake/built-at: '2026-12-08T00:00:00Z'")}

    plan = tmp_path / "plan.json"
    plan.write_text('{"format_version": "1.2", "resource_changes": []}')
    assert main(["review", "--plan", str(plan), "--base-lock", str(base), "--lock", str(tmp_path / "amis.lock.json"),
                 "--config", str(cfg)]) == 0
    comment = capsys.readouterr().out
    diff = comment.split("```diff\n", 1)[1].split("```", 1)[0]
    assert "-  - id: ami-0123456789abcdef0\n+  - id: ami-0fedcba9876543210\n" in diff
    assert "-      snapshotID: snap-0123456789abcdef0\n+      snapshotID: snap-0fedcba9876543210\n" in diff
    # Without --config, the review is what it was.
    assert main(["review", "--plan", str(plan), "--base-lock", str(base), "--lock", str(tmp_path / "amis.lock.json")]) == 0
    assert "EC2NodeClass" not in capsys.readouterr().out
    # A rollback makes the earlier entry current: the node class names its AMI and snapshot again.
    assert main(["rollback", "cpu", "--config", str(cfg)]) == 0
    capsys.readouterr()
    code, rolled_back, err = run(capsys, "cpu", "--config", str(cfg))
    assert code == 0, err
    assert rolled_back == before


def test_a_copy_region_gets_the_copies_and_its_stock_ami(tmp_path, capsys):
    """--region: the cluster's region. A data-volume pool's copy there on that region's stock AMI
    (by id when base_ami is one); an AMI pool's copy by id, without the root snapshot the lock does
    not record for a copy; a region without a copy exits 2 naming the fix."""
    cfg = write(tmp_path, 'cache = "data-volume"\nos = "bottlerocket"\n[pools.cpu.distribute]\nregions = ["eu-west-1"]\n',
                cache="data-volume", cache_snapshot_id="snap-0cache0000000000", data_device="/dev/xvdb",
                copies={"eu-west-1": "snap-0eu00000000000000"}, base_amis={"eu-west-1": "ami-0eeeeeeeeeeeeeeee"})
    code, out, err = run(capsys, "cpu", "--config", str(cfg), "--region", "eu-west-1")
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    assert doc["spec"]["amiSelectorTerms"] == [{"ssmParameter": EKS_SSM.removeprefix("ssm:")}]
    [data] = doc["spec"]["blockDeviceMappings"]
    assert data["ebs"]["snapshotID"] == "snap-0eu00000000000000"
    home = manifests(run(capsys, "cpu", "--config", str(cfg))[1])[0]
    assert home["spec"]["blockDeviceMappings"][0]["ebs"]["snapshotID"] == "snap-0cache0000000000"
    code, out, err = run(capsys, "cpu", "--config", str(cfg), "--region", "ap-south-1")
    assert (code, out) == (2, "") and "no cache snapshot in ap-south-1" in err and "distribute] regions" in err

    ami = tmp_path / "ami"
    ami.mkdir()
    cfg = write(ami, '[pools.cpu.distribute]\nregions = ["eu-west-1"]\n[pools.cpu.launch_template]\nroot_volume_size = 60\n',
                copies={"eu-west-1": "ami-0c0c0c0c0c0c0c0c0"})
    code, out, err = run(capsys, "cpu", "--config", str(cfg), "--region", "eu-west-1")
    assert code == 0, err
    (doc,) = manifests(out)
    assert crd.errors(doc) == []
    assert doc["spec"]["amiSelectorTerms"] == [{"id": "ami-0c0c0c0c0c0c0c0c0"}]
    [root] = doc["spec"]["blockDeviceMappings"]
    assert "snapshotID" not in root["ebs"] and root["ebs"]["volumeSize"] == "60Gi"
    rated = ami / "rated"
    rated.mkdir()
    cfg = write(rated, '[pools.cpu.distribute]\nregions = ["eu-west-1"]\n[pools.cpu.launch_template]\n'
                'volume_initialization_rate = 200\n', copies={"eu-west-1": "ami-0c0c0c0c0c0c0c0c0"})
    code, out, err = run(capsys, "cpu", "--config", str(cfg), "--region", "eu-west-1")
    assert (code, out) == (2, "") and "the copy in eu-west-1" in err and "volume_initialization_rate" in err
