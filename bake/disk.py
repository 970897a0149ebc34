"""The builder's root volume when ``root_volume_size`` is not set: the base AMI's size plus what
the pool's images take once pulled, plus headroom.

A pull keeps each layer twice: compressed in containerd's content store (docker: the same, as
it pulls through containerd or keeps its own copy while extracting) and unpacked in a snapshot.
``UNPACK_FACTOR`` is (compressed + unpacked) / compressed, measured with real containerd on real
directories by ``bench/unpack_factor.py`` (figures in docs/benchmarks.md), rounded up past the highest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 2**30
UNPACK_FACTOR = 7.0  # measured: at most 6.66 (python packages); docs/benchmarks.md, "Unpack factor"
HEADROOM = 0.15  # logs, the runtime's metadata, an image a little larger than its manifest says
HEADROOM_MIN_GIB = 2


@dataclass(frozen=True)
class DiskPlan:
    gib: int
    base_gib: int
    compressed_bytes: int
    images: int

    @property
    def images_gib(self) -> float:
        return self.compressed_bytes * UNPACK_FACTOR / GIB

    @property
    def reason(self) -> str:
        return (f"base AMI {self.base_gib} GiB + {self.images} image(s) {self.compressed_bytes / GIB:.1f} GiB compressed "
                f"x {UNPACK_FACTOR:g} unpack factor ({self.images_gib:.1f} GiB) + {HEADROOM:.0%} headroom "
                f"(at least {HEADROOM_MIN_GIB} GiB); root_volume_size overrides it")

    def as_dict(self) -> dict[str, object]:
        return {"gib": self.gib, "base_gib": self.base_gib, "compressed_bytes": self.compressed_bytes,
                "unpack_factor": UNPACK_FACTOR, "headroom": HEADROOM, "reason": self.reason}


def needed_bytes(compressed: int) -> int:
    """What one image takes on the builder's disk once pulled."""
    return math.ceil(compressed * UNPACK_FACTOR)


def builder_disk(base_gib: int, compressed: list[int]) -> DiskPlan:
    need = base_gib + sum(compressed) * UNPACK_FACTOR / GIB
    gib = math.ceil(need + max(need * HEADROOM, HEADROOM_MIN_GIB))
    return DiskPlan(gib=gib, base_gib=base_gib, compressed_bytes=sum(compressed), images=len(compressed))


def root_volume_gib(image: dict) -> int | None:
    """The base AMI's root volume size (DescribeImages), or None when it does not say."""
    root = image.get("RootDeviceName")
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root and mapping.get("Ebs", {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return None


def platform_arch(image: dict) -> str:
    """The OCI architecture of an AMI's ``Architecture`` (x86_64 -> amd64)."""
    return {"x86_64": "amd64", "arm64": "arm64", "i386": "386"}.get(image.get("Architecture", ""), "amd64")
