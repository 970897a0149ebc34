"""CopyImage's TagSpecifications for the sandbox's moto server, which ignores them.

AWS tags the new AMI (ResourceType ``image``) and every new snapshot (``snapshot``) as part of
CopyImage, and refuses any other resource type (EC2 API reference, CopyImage, TagSpecifications;
read 2026-11-30). moto (5.2) reads only SourceImageId, SourceRegion, Name and Description, so a
copy would come out untagged and the bake's tag-at-creation path could not be tested. This module
wraps moto's CopyImage response, inside the moto server process, to apply them the way AWS does,
so the sandbox runs the same calls as AWS. What it does not check: the ``ec2:CreateTags``
authorization AWS makes for them (moto's IAM mode checks the CopyImage action only).
"""

from __future__ import annotations

from typing import Any

TAGGABLE = ("image", "snapshot")


def tag_copy(backend: Any, image_id: str, specs: list[dict[str, Any]]) -> None:
    """Put each spec's tags on the copy ``image_id`` or on its snapshot."""
    image = backend.amis[image_id]
    for spec in specs:
        target = image if spec["ResourceType"] == "image" else image.ebs_snapshot
        for tag in spec.get("Tags", []):
            target.add_tag(tag["Key"], tag["Value"])


def install() -> None:
    from moto.ec2.exceptions import InvalidTaggableResourceType
    from moto.ec2.responses import EC2Response

    original = EC2Response.copy_image
    if getattr(original, "bake_tags_copies", False):
        return

    def copy_image(self: Any) -> Any:
        specs = self._get_param("TagSpecifications", [])
        for spec in specs:
            if spec.get("ResourceType") not in TAGGABLE:
                raise InvalidTaggableResourceType(spec.get("ResourceType"))
        result = original(self)
        tag_copy(self.ec2_backend, result.result["ImageId"], specs)
        return result

    copy_image.bake_tags_copies = True  # type: ignore[attr-defined]
    EC2Response.copy_image = copy_image  # type: ignore[method-assign]
