"""The tags every bake puts on what it creates.

They let `prune` find this tool's AMIs, `sweep` find a killed build's leftovers, and a lost
lock file be rebuilt from the AMIs' fingerprints. AWS limits: 50 tags, keys 128, values 256.
"""

from __future__ import annotations

from bake.model.stack import POOL_TAG

TOOL = "eks-image-bake"

KEY_TOOL = "bake:tool"
KEY_RUN = "bake:run-id"
KEY_POOL = POOL_TAG  # the stack tags its launch templates and groups with it too
KEY_ROLE = "bake:role"  # builder | key-pair | security-group | ami
KEY_CREATED = "bake:created-at"  # ISO 8601 UTC, when the run started
KEY_FINGERPRINT = "bake:fingerprint"
KEY_BASE_AMI = "bake:base-ami"
KEY_RUNTIME = "bake:runtime"
KEY_IMAGE_PREFIX = "bake:image:"  # bake:image:N = "REF@DIGEST" (truncated to 256)
KEY_GPU_DRIVER = "bake:gpu-driver"
KEY_CACHE_BYTES = "bake:cache-bytes"  # what the images occupy on the builder's disk
# On a copy of an AMI in another region: the AMI it was copied from, and that AMI's region.
KEY_SOURCE_AMI = "bake:source-ami"
KEY_SOURCE_REGION = "bake:source-region"
KEY_KEPT = "bake:kept-at"  # build --keep-on-failure left this run's builder: sweep removes it at any age

TAG_VALUE_MAX = 256
TAGS_MAX = 50


def run_tags(run_id: str, pool: str, role: str, created: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    tags = {**(extra or {})}
    tags.update({KEY_TOOL: TOOL, KEY_RUN: run_id, KEY_POOL: pool, KEY_ROLE: role, KEY_CREATED: created})
    return tags


def image_tags(images: list[tuple[str, str]], room: int) -> dict[str, str]:
    """``bake:image:N`` tags for (ref, digest) pairs, as many as ``room`` allows."""
    out: dict[str, str] = {}
    for i, (ref, digest) in enumerate(images[: max(room, 0)]):
        out[f"{KEY_IMAGE_PREFIX}{i}"] = f"{ref}@{digest}"[-TAG_VALUE_MAX:]
    return out


def as_aws(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v[:TAG_VALUE_MAX]} for k, v in tags.items()]


def from_aws(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}
