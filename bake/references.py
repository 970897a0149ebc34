"""The names under which the kubelet may ask for a baked image, and what the CRI must answer.

A kubelet's own pull leaves three references to an image in containerd's ``k8s.io``
namespace: the name it was asked for, ``repo@digest`` and the image id (the config's digest).
``ctr images pull`` leaves only the first, and the CRI then answers "not present" to a pod
that pins its image by digest: the node pulls it all again. The bake adds the others, plus
aliases: names the pods use that differ from the one baked (a mirror, a pull-through cache,
the same ECR repository in another region of the partition).

Pure functions: the steps and the planner call them; nothing here talks to a builder or AWS.
"""

from __future__ import annotations

import re

from bake.model.refs import ImageRef, parse_reference
from bake.model.images import ResolvedImage
from bake.partitions import partition_of

# The ECR FIPS endpoints amazon-eks-ami also tags its cached images for
# (templates/al2/provisioners/install-worker.sh, "Tag ECR fips endpoint for supported regions").
ECR_FIPS_REGIONS = frozenset({"us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1"})

# Where containerd's CRI reports `pinned` (and the kubelet's image GC then spares the image):
# pinned image support came in 1.7.3 and was backported to 1.6.22 (containerd#8720); 2.x has it.
# Labels set through ctr on an existing image read unpinned on some later 1.6/1.7 releases
# (containerd#9328, fixed by #8867/#9338): the bake therefore decides from the CRI's answer, and
# the version only explains a refusal.
PINNED_SINCE = {1: (1, 6, 22), 2: (2, 0, 0)}
PINNED_SINCE_17 = (1, 7, 3)
GC_ADVICE = (
    "the kubelet's image garbage collector may remove cached images once the image disk passes "
    "imageGCHighThresholdPercent (default 85): keep the cache well under it, or raise "
    "imageGCHighThresholdPercent/imageGCLowThresholdPercent in the kubelet config (nodeadm "
    "NodeConfig spec.kubelet.config), and leave imageMaximumGCAge unset (0); containerd 1.6.22+, "
    "1.7.3+ and 2.x honour the pinned label instead"
)


def name_of(ref: ImageRef) -> str:
    return f"{ref.registry}/{ref.repository}"


def tagged(ref: ImageRef, tag: str | None = None) -> str | None:
    """``registry/repository:tag`` (the tag given, else the reference's); None for a digest-only one."""
    tag = tag or ref.tag or (None if ref.digest else "latest")
    return f"{name_of(ref)}:{tag}" if tag else None


def alias_names(image: ImageRef, aliases: list[str]) -> list[str]:
    """Each alias as ``registry/repository:tag``; an alias without a tag takes the image's, and
    stays a bare name (found by digest only) when the image is pinned by digest alone."""
    out = []
    for alias in aliases:
        ref = parse_reference(alias)
        tag = ref.tag or image.tag or (None if image.digest else "latest")
        name = f"{name_of(ref)}:{tag}" if tag else name_of(ref)
        if name not in out:
            out.append(name)
    return out


def ecr_regional_aliases(image: ImageRef, regions: list[str]) -> list[str]:
    """The image's name at every regional ECR endpoint of its partition, and the FIPS ones,
    as amazon-eks-ami tags its cached images (so an AMI copied to another region still
    matches the pods there). Empty for an image that is not in ECR."""
    ecr = image.ecr
    if not ecr:
        return []
    account, own_region = ecr
    suffix = ".amazonaws.com.cn" if image.registry.endswith(".cn") else ".amazonaws.com"
    hosts = []
    # DescribeRegions answers for the caller's partition (moto answers for all of them).
    partition = partition_of(own_region)
    for region in sorted({r for r in regions if partition_of(r) == partition} | {own_region}):
        hosts.append(f"{account}.dkr.ecr.{region}{suffix}")
        if region in ECR_FIPS_REGIONS:
            hosts.append(f"{account}.dkr.ecr-fips.{region}{suffix}")
    tag = image.tag or ("latest" if not image.digest else None)
    names = [f"{host}/{image.repository}" + (f":{tag}" if tag else "") for host in hosts if host != image.registry]
    return names


def pool_aliases(images: list[ImageRef], configured: dict[str, list[str]], regional: bool,
                 regions: list[str]) -> dict[str, list[str]]:
    """Every image's aliases (as listed in ``images``), configured ones first, without repeats."""
    out: dict[str, list[str]] = {}
    for ref in images:
        wanted = list(configured.get(ref.original, []))
        if regional:
            wanted += ecr_regional_aliases(ref, regions)
        names = [n for n in alias_names(ref, wanted) if n != tagged(ref)]
        if names:
            out[ref.original] = names
    return out


def references(image: ResolvedImage, aliases: list[str], image_id: str | None, *, digest_aliases: bool) -> list[str]:
    """What the node's runtime must find for one image: its tag, ``repo@digest``, the image
    id, and each alias (with ``alias@digest`` too when the runtime can hold one: Docker
    refuses a tag that carries a digest)."""
    refs = [tagged(image.ref), f"{name_of(image.ref)}@{image.digest}", image_id]
    for alias in aliases:
        ref = parse_reference(alias)
        if ref.tag:
            refs.append(alias)
        if digest_aliases:
            refs.append(f"{name_of(ref)}@{image.digest}")
    return list(dict.fromkeys(r for r in refs if r))


def runtime_version(version: str) -> tuple[int, ...]:
    """``1.6.20~ds1`` / ``v1.7.24`` -> (1, 6, 20); () when it does not start with a version."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    return tuple(int(p) for p in m.groups() if p is not None) if m else ()


def reports_pinned(runtime: str, version: str) -> bool:
    """Whether the CRI reports ``pinned`` (so the kubelet's image GC leaves the cache alone)."""
    v = runtime_version(version)
    if runtime != "containerd" or len(v) < 2:
        return False
    v = (*v, 0)[:3]
    if v[:2] == (1, 6):
        return v >= PINNED_SINCE[1]
    if v[:2] == (1, 7):
        return v >= PINNED_SINCE_17
    return v >= PINNED_SINCE[2] or v[:2] > (1, 7)
