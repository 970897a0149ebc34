"""AWS's rules where moto is lenient: the sandbox's moto server refuses what AWS documents as refused.

moto accepts much that AWS refuses, so a call the tool gets wrong would pass every test. Each
rule below is one documented refusal, with the page it comes from and the day it was read; the
server answers it with AWS's error code and message shape. ``RULES`` is the one table of them
(docs/aws-rules.md shows it, and a test holds the two equal). ``bake_sandbox.moto_server``
installs them in every moto server the sandbox and the tests start; ``BAKE_MOTO_STRICT=0`` leaves
them out, which only the test that shows moto's own answer beside the strict one sets.

Where a page states the rule but not the error AWS returns, the code is the one EC2 or Auto
Scaling uses for that kind of refusal (the table says so in ``error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bake.model.instance_types import released_after_2022

READ = "2026-12-06"
FSR_QUOTA = 5  # snapshots with fast snapshot restore per Region (EBS User Guide)


@dataclass(frozen=True)
class Rule:
    id: str
    call: str  # the API action it checks
    refuses: str  # what AWS refuses, in the page's words where they are short
    page: str
    error: str  # the error code (and how it was chosen)
    tool: str  # what the tool itself does about it
    read: str = READ


RULES = (
    Rule("create-image-existing-mapping", "ec2:CreateImage",
         "a BlockDeviceMappings entry for a device the instance already has that sets anything but "
         "DeleteOnTermination: \"The only option that can be changed for existing mappings or snapshots is "
         "DeleteOnTermination\"; \"You can't change the volume size using the VolumeSize parameter\"; "
         "\"You can't modify the encryption status of existing volumes or snapshots\"",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html (BlockDeviceMapping)",
         "InvalidBlockDeviceMapping (EC2's code for a mapping it rejects; the page names none)",
         "sends no mapping: the nodes' volume type, IOPS and throughput are in the launch template / "
         "configuration (bake/steps/ami.py, constructs/nodepools/pool.py)"),
    Rule("fast-snapshot-restore-quota", "ec2:EnableFastSnapshotRestores",
         f"more than {FSR_QUOTA} snapshots with fast snapshot restore in a Region: \"You can enable up to "
         f"{FSR_QUOTA} snapshots for fast snapshot restore per Region\" (counted per snapshot, whatever its zones)",
         "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ebs-fast-snapshot-restore.html (Considerations)",
         "ResourceLimitExceeded (EC2's code for a per-Region count, as in CopySnapshot's \"The limit is 5 for "
         "this destination region\"; the page names none)",
         "`bake plan` exits 2 when a rebake's apply would hold more (bake/fsr_quota.py)"),
    Rule("launch-configuration-new-type", "autoscaling:CreateLaunchConfiguration",
         "an instance type released after 2022-12-31: \"As of January 1, 2023, new Amazon EC2 instance types are "
         "no longer supported in launch configurations\"",
         "https://docs.aws.amazon.com/autoscaling/ec2/userguide/LaunchConfiguration.html",
         "ValidationError \"The specified instance type T is not valid\" (as AWS answers it: aws/amazon-ecs-ami#188)",
         "config loading exits 2 (plan, build, synthesis) naming the limit and launch = \"template\" "
         "(bake/model/instance_types.py)"),
    Rule("copy-image-kms-without-encrypted", "ec2:CopyImage",
         "KmsKeyId without Encrypted=true: \"If you specify a KMS key, you must also set the encrypted state "
         "to true\"",
         "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopyImage.html (KmsKeyId)",
         "InvalidParameterDependency \"The parameter KmsKeyId requires the parameter Encrypted to be set.\" "
         "(EC2's answer to the same rule on CreateVolume)",
         "sends both or neither (bake/steps/distribute.py)"),
)


def _error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _truthy(v: Any) -> bool:
    return str(v).lower() == "true"


# -- the checks, one per rule --------------------------------------------------------------------
def check_create_image(backend: Any, instance_id: str, mappings: list[dict[str, Any]]) -> None:
    existing = set(backend.get_instance(instance_id).block_device_mapping)
    for m in mappings:
        changed = sorted(k for k in (m.get("Ebs") or {}) if k != "DeleteOnTermination")
        if m.get("DeviceName") in existing and changed:
            raise _error("InvalidBlockDeviceMapping",
                         f"The only option that can be changed for existing mappings or snapshots is "
                         f"DeleteOnTermination; the mapping for {m['DeviceName']} sets {', '.join(changed)}.")


def check_fast_snapshot_restores(backend: Any, snapshot_ids: list[str]) -> None:
    from bake_sandbox.moto_fsr import enabled_snapshots

    after = enabled_snapshots(backend) | set(snapshot_ids)
    if len(after) > FSR_QUOTA:
        raise _error("ResourceLimitExceeded",
                     f"Fast snapshot restore can be enabled for at most {FSR_QUOTA} snapshots per Region; "
                     f"this request would make {len(after)} in {backend.region_name}.")


def check_launch_configuration(instance_type: str | None) -> None:
    if instance_type and released_after_2022(instance_type):
        from moto.autoscaling.exceptions import ValidationError

        raise ValidationError(f"The specified instance type {instance_type} is not valid")


def check_copy_image(params: dict[str, Any]) -> None:
    if params.get("KmsKeyId") and not _truthy(params.get("Encrypted")):
        raise _error("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")


def install() -> None:
    """Wrap moto's response methods (after moto_fsr and moto_copy_tags, whose methods they wrap
    in turn): each check runs before moto's own handling."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response.create_image, "bake_strict", False):
        return

    def wrap(cls: Any, name: str, check: Any) -> None:
        original = getattr(cls, name)

        def method(self: Any) -> Any:
            check(self)
            return original(self)

        method.bake_strict = True  # type: ignore[attr-defined]
        setattr(cls, name, method)

    wrap(EC2Response, "create_image", lambda r: check_create_image(
        r.ec2_backend, r._get_param("InstanceId"), r._get_param("BlockDeviceMappings", [])))
    wrap(EC2Response, "enable_fast_snapshot_restores", lambda r: check_fast_snapshot_restores(
        r.ec2_backend, r._get_param("SourceSnapshotIds", [])))
    wrap(EC2Response, "copy_image", lambda r: check_copy_image(
        {"KmsKeyId": r._get_param("KmsKeyId"), "Encrypted": r._get_param("Encrypted")}))
    wrap(AutoScalingResponse, "create_launch_configuration",
         lambda r: check_launch_configuration(r._get_param("InstanceType")))
