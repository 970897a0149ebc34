"""The kubelet's view of a bake: after it, containerd's CRI (asked over its socket by an
independent grpcio client, ``criclient.py``) finds every image by tag, by digest, by image id
and by each alias; the regional-alias switch makes an ECR image findable under another
region's ECR name; a reference the CRI does not find fails the bake, naming it."""

from __future__ import annotations

import json

import pytest

from bake import cri
from bake.build import Baker, steps_for
from bake.model.config import load_config
from bake.model.lock import LockFile
from bake.model.refs import parse_reference
from bake.progress import NullReporter
from bake.references import name_of, references
from bake.model.images import ResolvedImage
from bake.steps.base import BuildState
from bake.steps.pull import StepVerify

from criclient import CriClient
from support.cli import run_bake
from support.node_runtime import node_ctr, node_runtime
from support.sandbox_bakes import write_config

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("clean_after")]

MIRROR = "mirror.example.com/env/cri-app"  # an alias without a tag: it takes the image's
CACHE = "cache.internal:5000/team/app:stable"  # an alias with its own tag


@pytest.fixture(scope="module")
def crictl(sandbox):
    """The tests' own CRI client, with the node's containerd serving (it is stopped between
    bakes, as on an EKS AL2023 AMI; the bakes see it stopped for their instances all the same)."""
    with node_runtime(sandbox):
        client = CriClient()
        yield client
        client.close()


@pytest.fixture(scope="module")
def cri_bake(sandbox, tmp_path_factory):
    """One containerd bake of a fresh image (two aliases) and a fresh ECR image (regional
    aliases), so no earlier run's references can stand in for this one's."""
    d = tmp_path_factory.mktemp("cri")
    info = sandbox.info
    sandbox.push_image("env/cri-app", "v1", size_mb=1)
    sandbox.push_image(f"{info.ecr_registry}/env/cri-ecr", "v1", size_mb=1)
    app, ecr = f"{info.registry}/env/cri-app:v1", f"{info.ecr_registry}/env/cri-ecr:v1"
    cfg = write_config(d / "bake.toml", sandbox, {"cri": {
        "images": [app, ecr], "aliases": {app: [MIRROR, CACHE]}, "ecr_regional_aliases": True,
    }})
    result = run_bake("build", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    entry = LockFile(d / "amis.lock.json").read().pools["cri"].current
    return {i.ref: i for i in entry.images}, entry, result, app, ecr


def _all_names(img) -> list[str]:
    ref = parse_reference(img.ref)
    return references(ResolvedImage(ref, img.digest, None), img.aliases or [], img.image_id, digest_aliases=True)


def test_every_image_is_found_by_tag_digest_id_and_alias(cri_bake, crictl):
    images, entry, _, app, ecr = cri_bake
    for img in images.values():
        ref = parse_reference(img.ref)
        by_tag = crictl.status(img.ref)
        assert by_tag is not None, img.ref
        assert img.image_id == by_tag.id, "the lock records the CRI's image id"
        assert f"{name_of(ref)}@{img.digest}" in by_tag.repo_digests
        names = _all_names(img)
        assert f"{name_of(ref)}@{img.digest}" in names and img.image_id in names
        for name in names:
            found = crictl.status(name)
            assert found is not None and found.id == by_tag.id, f"the CRI does not find {name}"
    app_aliases = images[app].aliases
    assert app_aliases == [f"{MIRROR}:v1", CACHE]
    for name in (f"{MIRROR}:v1", f"{MIRROR}@{images[app].digest}", CACHE, f"cache.internal:5000/team/app@{images[app].digest}"):
        assert crictl.status(name).id == images[app].image_id, name


def test_regional_switch_finds_the_ecr_image_under_other_regions(sandbox, cri_bake, crictl):
    images, *_, ecr = cri_bake
    img = images[ecr]
    regions = {r["RegionName"] for r in sandbox.client("ec2").describe_regions(AllRegions=True)["Regions"]}
    assert "eu-west-1" in regions and len(regions) > 10
    other = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/env/cri-ecr"
    fips = "123456789012.dkr.ecr-fips.us-west-2.amazonaws.com/env/cri-ecr"
    # one name per other region of the partition, plus the FIPS endpoints of its US regions;
    # none in China or GovCloud (other partitions, which moto's DescribeRegions also lists)
    commercial = {r for r in regions if not r.startswith(("cn-", "us-gov-"))}
    assert len(img.aliases) == len(commercial) - 1 + len(commercial & {"us-east-1", "us-east-2", "us-west-1", "us-west-2"})
    assert not [a for a in img.aliases if ".cn/" in a or "us-gov" in a]
    for name in (f"{other}:v1", f"{other}@{img.digest}", f"{fips}:v1", f"{fips}@{img.digest}"):
        found = crictl.status(name)
        assert found is not None and found.id == img.image_id, name
    # only the ECR image gets regional names
    assert all("dkr.ecr" not in a for a in images[next(r for r in images if r != ecr)].aliases)


def test_bake_reports_what_the_cri_found_and_the_gc_caveat(cri_bake, crictl):
    images, entry, result, *_ = cri_bake
    events = [json.loads(line) for line in result.stdout.splitlines()]
    count = sum(len(_all_names(img)) for img in images.values())
    assert any(e["message"].startswith(f"the CRI finds all 2 image(s) under {count} reference(s)") for e in events)
    version = crictl.version()
    assert entry.runtime_version == f"containerd {version}"
    warned = [e["message"] for e in events if e["kind"] == "warn" and "imageGCHighThresholdPercent" in e["message"]]
    if version.startswith("1.6."):  # this testbed: containerd 1.6 does not report pinned
        assert warned and not crictl.status(entry.images[0].ref).pinned
    else:
        assert not warned and all(crictl.status(i.ref).pinned for i in entry.images)
    plan = run_bake("plan", "--config", str(result.args[result.args.index("--config") + 1]), "--json")
    notes = json.loads(plan.stdout)["pools"][0]["notes"]
    assert bool(notes) == bool(warned)


def test_negative_control_an_image_pulled_by_tag_alone_is_not_found_by_digest(sandbox, crictl):
    """As before this change: `ctr images pull` with the CRI labels names the image by tag only.
    Both clients, the tests' and the bake's, must say so (a client that answered "present"
    to everything would pass every test above)."""
    digest = sandbox.push_image("env/cri-tag-only", "v1", size_mb=1)
    ref = f"{sandbox.info.registry}/env/cri-tag-only:v1"
    node_ctr(sandbox, "-n", "k8s.io", "images", "pull", "--hosts-dir", "/etc/containerd/certs.d",
             "--label", "io.cri-containerd.image=managed", ref)
    by_digest = f"{sandbox.info.registry}/env/cri-tag-only@{digest}"
    try:
        assert crictl.status(ref) is not None
        assert crictl.status(by_digest) is None
        ours = cri.Client()
        try:
            assert ours.image_status(ref)["id"] == crictl.status(ref).id
            assert ours.image_status(by_digest) is None
        finally:
            ours.close()
    finally:
        node_ctr(sandbox, "-n", "k8s.io", "images", "rm", ref, check=False)


class StepLoseAlias:
    """A stand-in for anything that drops a name between the pull and verify (a clean-up
    script, a runtime restart that loses it): removes one alias on the builder."""

    name, title = "lose-alias", "removing an alias (test fault)"

    def __init__(self, alias: str):
        self.alias = alias

    def run(self, st: BuildState) -> None:
        st.conn.run(f"sudo -n ctr -n k8s.io images rm {self.alias}", timeout=60)

    def cleanup(self, st: BuildState) -> None:
        pass


def test_a_reference_the_cri_does_not_find_fails_the_bake_naming_it(sandbox, tmp_path, monkeypatch):
    sandbox.push_image("env/cri-lost", "v1", size_mb=1)
    ref = f"{sandbox.info.registry}/env/cri-lost:v1"
    lost = "mirror.example.com/env/cri-lost:v1"
    cfg = write_config(tmp_path / "bake.toml", sandbox, {"lost": {"images": [ref], "aliases": {ref: [lost]}}})

    def with_fault(pool, lock):
        steps = steps_for(pool, lock)
        at = next(i for i, s in enumerate(steps) if isinstance(s, StepVerify))
        return steps[:at] + [StepLoseAlias(lost)] + steps[at:]

    monkeypatch.setattr("bake.build.steps_for", with_fault)
    lock = LockFile(tmp_path / "amis.lock.json")
    with NullReporter() as reporter:
        [outcome] = Baker(load_config(cfg), lock, reporter).build()
    assert outcome.error and "does not find what the kubelet may ask for" in outcome.error
    assert f"{lost} (not present)" in outcome.error
    assert ref not in outcome.error.split("ask for:")[1], "only the lost name is named"
    assert not lock.path.exists(), "a failed verify records nothing"
