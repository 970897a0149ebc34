"""What EC2 says of an image, read in one place: the ``Image`` view over a DescribeImages entry,
and the queries that find images (one by id, the tool's by tag, every one the account owns).

Callers read properties (``image.snapshot_ids``, ``image.root_volume_gib``), never
``dict["BlockDeviceMappings"]``: a fact of an image has one definition here.

The tool's resources are found by the tags of ``bake.tags``; ``tool_filters`` builds the
DescribeImages/DescribeSnapshots filters for them, so a query for the tool's snapshots (by pool,
by role) is ``tool_snapshots`` with the same arguments as ``tool_images``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bake import aws, tags

# What AWS answers for an image that does not exist (part of bake.resources.NOT_FOUND); an id AWS
# cannot even parse names nothing that exists.
IMAGE_NOT_FOUND = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"})

_ARCH = {"x86_64": "amd64", "arm64": "arm64", "i386": "386"}  # EC2's Architecture -> OCI's


@dataclass(frozen=True)
class Image:
    """One DescribeImages entry, read through named properties."""

    data: dict[str, Any]

    @classmethod
    def of(cls, image: Image | dict[str, Any]) -> Image:
        return image if isinstance(image, Image) else cls(image)

    @property
    def id(self) -> str:
        return self.data["ImageId"]

    @property
    def name(self) -> str:
        return self.data.get("Name", "")

    @property
    def description(self) -> str:
        return self.data.get("Description", "")

    @property
    def state(self) -> str:
        return self.data.get("State", "")

    @property
    def creation_date(self) -> str:
        return self.data.get("CreationDate", "")

    @property
    def tags(self) -> dict[str, str]:
        return tags.from_aws(self.data.get("Tags"))

    @property
    def root_device(self) -> str | None:
        return self.data.get("RootDeviceName")

    @property
    def root_volume_gib(self) -> int | None:
        """The root volume's size, or None when the image does not say."""
        for mapping in self.data.get("BlockDeviceMappings", []):
            if mapping.get("DeviceName") == self.root_device and mapping.get("Ebs", {}).get("VolumeSize"):
                return int(mapping["Ebs"]["VolumeSize"])
        return None

    @property
    def _snapshot_volumes(self) -> list[dict[str, Any]]:
        return [m["Ebs"] for m in self.data.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]

    @property
    def snapshot_ids(self) -> list[str]:
        """The EBS snapshots behind the image, in mapping order."""
        return [ebs["SnapshotId"] for ebs in self._snapshot_volumes]

    @property
    def snapshot_gib(self) -> int | None:
        """The sizes of the volumes its snapshots were taken of, GiB (None when one is unknown)."""
        sizes = [ebs.get("VolumeSize") for ebs in self._snapshot_volumes]
        return sum(sizes) if sizes and all(isinstance(s, int) for s in sizes) else None  # type: ignore[arg-type]

    @property
    def architecture(self) -> str:
        return self.data.get("Architecture", "")

    @property
    def platform_arch(self) -> str:
        """The OCI architecture of the image (x86_64 -> amd64)."""
        return _ARCH.get(self.architecture, "amd64")

    @property
    def cache_bytes(self) -> int | None:
        """The ``bake:cache-bytes`` tag: what the baked images occupy on the disk."""
        cached = self.tags.get(tags.KEY_CACHE_BYTES)
        return int(cached) if cached and cached.isdigit() else None

    @property
    def by_tool(self) -> bool:
        return self.tags.get(tags.KEY_TOOL) == tags.TOOL


def describe(ec2: Any, ami_id: str) -> Image | None:
    """The image, or None when it does not exist (or is not visible)."""
    try:
        found = ec2.describe_images(ImageIds=[ami_id])["Images"]
    except Exception as e:
        if aws.error_code(e) in IMAGE_NOT_FOUND:
            return None
        raise
    return Image(found[0]) if found else None


def snapshot_ids_of(ec2: Any, ami_id: str) -> list[str]:
    """The snapshots behind the AMI ``ami_id``; none when it is gone."""
    image = describe(ec2, ami_id)
    return image.snapshot_ids if image else []


def tool_filters(*, role: str | None = None, pool: str | None = None, fingerprint: str | None = None) -> list[dict[str, Any]]:
    """EC2 filters for what this tool tagged (``bake.tags``), narrowed by role, pool, fingerprint."""
    wanted = {tags.KEY_TOOL: tags.TOOL, tags.KEY_ROLE: role, tags.KEY_POOL: pool, tags.KEY_FINGERPRINT: fingerprint}
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in wanted.items() if v is not None]


def tool_images(ec2: Any, *, pool: str | None = None, fingerprint: str | None = None,
                available: bool = False) -> list[Image]:
    """The AMIs this tool built in the client's region (tagged ``bake:role = ami``), newest
    first; by pool, by fingerprint, only available ones."""
    filters = tool_filters(role="ami", pool=pool, fingerprint=fingerprint)
    if available:
        filters.append({"Name": "state", "Values": ["available"]})
    found = [Image(i) for i in aws.paginate(ec2, "describe_images", "Images", Owners=["self"], Filters=filters)]
    return sorted(found, key=lambda i: i.creation_date, reverse=True)


def owned_images(ec2: Any) -> list[Image]:
    """Every AMI the account owns in the client's region (which snapshots back an AMI)."""
    return [Image(i) for i in aws.paginate(ec2, "describe_images", "Images", Owners=["self"])]


def tool_snapshots(ec2: Any, *, role: str | None = None, pool: str | None = None, fingerprint: str | None = None,
                   completed: bool = False) -> list[dict[str, Any]]:
    """The snapshots this tool tagged (DescribeSnapshots entries), newest first; by role, pool,
    fingerprint, only completed ones."""
    filters = tool_filters(role=role, pool=pool, fingerprint=fingerprint)
    if completed:
        filters.append({"Name": "status", "Values": ["completed"]})
    found = list(aws.paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=filters))
    return sorted(found, key=lambda s: str(s.get("StartTime", "")), reverse=True)
