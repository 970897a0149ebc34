"""The names a baked image must answer to, the regional ECR names, and the pinned decision."""

from __future__ import annotations

import pytest

from bake.build import _gc_notes
from bake.fingerprint import fingerprint
from bake.model.config import PoolConfig
from bake.model.lock import ImageDigest, LockEntry, PoolLock
from bake.model.refs import parse_reference
from bake.references import ecr_regional_aliases, pool_aliases, references, reports_pinned, runtime_version
from bake.model.images import ResolvedImage

D = "sha256:" + "b" * 64
ID = "sha256:" + "c" * 64
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/env:rev3"
REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "cn-north-1", "us-gov-west-1", "ap-south-1"]


def resolved(ref: str) -> ResolvedImage:
    return ResolvedImage(parse_reference(ref), D, None)


def test_an_image_answers_to_its_tag_digest_id_and_aliases():
    refs = references(resolved("python:3.12"), ["mirror.example/python:3.12"], ID, digest_aliases=True)
    assert refs == ["docker.io/library/python:3.12", f"docker.io/library/python@{D}", ID,
                    "mirror.example/python:3.12", f"mirror.example/python@{D}"]
    # docker cannot hold ALIAS@DIGEST; an id not known yet is left out
    assert references(resolved("python:3.12"), ["mirror.example/python:3.12"], None, digest_aliases=False) == [
        "docker.io/library/python:3.12", f"docker.io/library/python@{D}", "mirror.example/python:3.12"]


def test_an_image_pinned_by_digest_alone_has_no_tag_reference():
    ref = f"r.example/app@{D}"
    aliases = pool_aliases([parse_reference(ref)], {ref: ["m.example/app"]}, False, [])
    assert aliases == {ref: ["m.example/app"]}  # a bare name: found by digest only
    assert references(resolved(ref), aliases[ref], ID, digest_aliases=True) == [
        f"r.example/app@{D}", ID, f"m.example/app@{D}"]


def test_alias_without_tag_takes_the_images_and_repeats_are_dropped():
    img = parse_reference("quay.io/org/env:rev9")
    got = pool_aliases([img], {img.original: ["m.example/env", "m.example/env:rev9", "c:5000/x:stable",
                                               "quay.io/org/env"]}, False, [])
    assert got == {img.original: ["m.example/env:rev9", "c:5000/x:stable"]}  # its own name is no alias


def test_regional_ecr_names_cover_the_partition_and_fips_as_the_eks_ami_does():
    names = ecr_regional_aliases(parse_reference(ECR), REGIONS)
    hosts = [n.split("/")[0] for n in names]
    assert hosts == [
        "123456789012.dkr.ecr.ap-south-1.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",  # its own region's FIPS name, not its own
        "123456789012.dkr.ecr.us-west-2.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-west-2.amazonaws.com",
    ]
    assert all(n.endswith("/team/env:rev3") for n in names)
    assert ecr_regional_aliases(parse_reference("quay.io/org/env:rev9"), REGIONS) == []


def test_regional_names_in_china_use_the_cn_domain_and_stay_there():
    names = ecr_regional_aliases(parse_reference("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/env:v1"),
                                 REGIONS + ["cn-northwest-1"])
    assert names == ["123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn/env:v1"]


def test_regional_switch_adds_to_configured_aliases_for_ecr_images_only():
    ecr, other = parse_reference(ECR), parse_reference("quay.io/org/env:rev9")
    got = pool_aliases([ecr, other], {ECR: ["m.example/env"]}, True, REGIONS)
    assert got[ECR][0] == "m.example/env:rev3" and len(got[ECR]) == 6
    assert other.original not in got


@pytest.mark.parametrize("runtime, version, pinned", [
    ("containerd", "1.6.20~ds1", False), ("containerd", "1.6.22", True), ("containerd", "1.6.21", False),
    ("containerd", "v1.7.0", False), ("containerd", "1.7.2", False), ("containerd", "1.7.3", True),
    ("containerd", "1.7.24~ds1", True), ("containerd", "2.0.1", True), ("containerd", "2.1.9+unknown", True),
    ("containerd", "garbage", False), ("docker", "27.0.1", False),
])
def test_the_cri_reports_pinned_from_containerd_1_6_22_and_1_7_3(runtime, version, pinned):
    assert reports_pinned(runtime, version) is pinned


def test_runtime_version_parses_distribution_suffixes():
    assert runtime_version("1.6.20~ds1") == (1, 6, 20)
    assert runtime_version("v2.1") == (2, 1)
    assert runtime_version("") == ()


def _pool(runtime: str = "containerd") -> PoolConfig:
    return PoolConfig(name="cpu", base_ami="ami-0123456789abcdef0", images=["python:3.12"], runtime=runtime)


def _record(version: str | None) -> PoolLock:
    entry = LockEntry(ami_id="ami-1", region="us-east-1", fingerprint="f", base_ami="ami-0",
                      images=[ImageDigest(ref="python:3.12", digest=D)], built_at="t", runtime_version=version)
    return PoolLock(current=entry)


def test_plan_says_when_the_kubelets_image_gc_may_remove_the_cache():
    [note] = _gc_notes(_pool(), _record("containerd 1.6.20~ds1"))
    assert "containerd 1.6.20~ds1 does not report pinned" in note
    assert "imageGCHighThresholdPercent" in note and "imageMaximumGCAge" in note
    assert _gc_notes(_pool(), _record("containerd 1.7.24")) == []
    assert "1.6.22+, 1.7.3+, 2.x" in _gc_notes(_pool(), PoolLock())[0]  # not baked yet: the bake will check
    assert _gc_notes(_pool("docker"), _record("docker 20.10.24")) == []


def test_aliases_change_the_fingerprint():
    base = fingerprint("ami-0", [("python:3.12", D)], "containerd", None)
    assert fingerprint("ami-0", [("python:3.12", D)], "containerd", None, aliases={}) == base
    assert fingerprint("ami-0", [("python:3.12", D)], "containerd", None, aliases={"python:3.12": ["m/p:3.12"]}) != base


class _RestartingCri:
    """A builder whose containerd was just restarted: the CRI refuses ``refusals`` times, then answers."""

    cancel = None  # Connection.cancel

    def __init__(self, refusals: int):
        self.refusals, self.calls = refusals, 0

    def run(self, command, **kwargs):
        from bake.ssh import Result, UnexpectedExit

        self.calls += 1
        if self.calls <= self.refusals:
            raise UnexpectedExit(Result(command, "", "cri: the CRI refused /runtime.v1.RuntimeService/Version", 1))
        return Result(command, '{"runtime": "containerd", "version": "1.7.24", "images": {}}', "", 0)


def test_await_cri_waits_for_a_restarted_containerd_s_cri_then_gives_up_at_its_timeout():
    import pytest

    from bake.runtimes import Containerd
    from bake.ssh import UnexpectedExit

    conn = _RestartingCri(refusals=3)
    Containerd().await_cri(conn, timeout=10)
    assert conn.calls == 4
    with pytest.raises(UnexpectedExit, match="CRI refused"):
        Containerd().await_cri(_RestartingCri(refusals=1000), timeout=0.5)
