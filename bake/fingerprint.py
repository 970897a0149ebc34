"""What makes two bakes of a pool interchangeable.

The fingerprint hashes everything that changes the AMI's content: the base AMI, the image
digests (not tags: a moved tag is a new image), the runtime, the GPU settings, the images'
aliases, whether the prewarm unit is baked in, and the provisioning recipe's version. Same
fingerprint, same AMI: the bake is skipped.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bake.model.config import PoolConfig

# Bump when the commands run on the builder change what ends up on the AMI.
# 2: every image also named repo@digest and by its image id (the CRI finds it by digest);
#    the images' size on disk measured and tagged; the prewarm unit.
RECIPE_VERSION = "2"


def fingerprint(base_ami: str, images: list[tuple[str, str]], runtime: str, gpu: dict | None,
                prewarm: bool = True, aliases: dict[str, list[str]] | None = None) -> str:
    doc: dict = {
        "recipe": RECIPE_VERSION,
        "base_ami": base_ami,
        "images": sorted([ref, digest] for ref, digest in images),
        "runtime": runtime,
        "gpu": gpu,
        "prewarm": prewarm,
    }
    if aliases:
        doc["aliases"] = {ref: sorted(names) for ref, names in aliases.items()}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def pool_fingerprint(pool: PoolConfig, base_ami: str, images: list[tuple[str, str]],
                     aliases: dict[str, list[str]] | None = None, arch: str = "amd64") -> str:
    """The fingerprint of ``pool`` baked on the resolved ``base_ami`` with ``images`` as
    (reference, digest) and the images' resolved ``aliases`` (bake.references.pool_aliases):
    the builder's own settings (instance type, SSH, subnet, tags...) do not count, nor do the
    GPU settings of a pool without a GPU. A data-volume pool's cache does not hold the AMI:
    only what the node's AMI must match counts (``data_volume_base``)."""
    gpu = pool.gpu_settings.model_dump() if pool.gpu else None
    base = data_volume_base(pool, arch) if pool.cache == "data-volume" else base_ami
    return fingerprint(base, images, pool.runtime, gpu, pool.prewarm, aliases)


def data_volume_base(pool: PoolConfig, arch: str) -> str:
    """What stands for the base AMI in a data-volume pool's fingerprint: the node's OS and
    architecture (the runtime is in the fingerprint already). A new stock AMI of the same OS and
    architecture keeps the cache: the volume holds the runtime's root directory only, which a
    runtime of the same on-disk format reads whatever AMI it runs on (docs/data-volume.md says
    what the plan cannot see: a stock AMI's containerd moving to a format the cache lacks)."""
    return f"data-volume:{pool.os}:{arch}"
