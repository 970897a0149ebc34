"""An Auto Scaling group's launch source: the launch configuration it names, or the launch
template version it launches from (the manual procedure's step 1, "the AMI that's currently used
in the active launch configuration"). ``base_ami = "asg:NAME"`` and ``bake adopt`` both read it
through ``launch_source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bake.errors import UsageError


class LaunchSourceError(UsageError):
    """The group's launch source cannot be read: it has none, or the one it names is gone."""


@dataclass(frozen=True)
class LaunchSource:
    kind: str  # "launch_configuration" | "launch_template"
    data: dict[str, Any]  # the DescribeLaunchConfigurations entry, or the DescribeLaunchTemplateVersions one

    @property
    def settings(self) -> dict[str, Any]:
        """The instance settings: the configuration itself, or the template version's data."""
        return self.data if self.kind == "launch_configuration" else (self.data.get("LaunchTemplateData") or {})

    @property
    def ami(self) -> str | None:
        return self.settings.get("ImageId") or None

    @property
    def label(self) -> str:
        if self.kind == "launch_configuration":
            return f"launch configuration {self.data['LaunchConfigurationName']}"
        return f"launch template {self.data['LaunchTemplateId']} version {self.data['VersionNumber']}"


def template_spec(group: dict[str, Any]) -> dict[str, Any] | None:
    """The group's launch template specification, its own or its mixed instances policy's."""
    return group.get("LaunchTemplate") or (
        group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("LaunchTemplateSpecification")
    )


def launch_source(group: dict[str, Any], autoscaling: Any, ec2: Any) -> LaunchSource:
    """The launch configuration the group (a DescribeAutoScalingGroups entry) names, else the
    version of its launch template it launches from (``$Default`` when it names none)."""
    name = group["AutoScalingGroupName"]
    if lc_name := group.get("LaunchConfigurationName"):
        lcs = autoscaling.describe_launch_configurations(LaunchConfigurationNames=[lc_name])["LaunchConfigurations"]
        if not lcs:
            raise LaunchSourceError(f"launch configuration {lc_name!r} of {name!r} does not exist")
        return LaunchSource("launch_configuration", lcs[0])
    spec = template_spec(group)
    if not spec:
        raise LaunchSourceError(f"Auto Scaling group {name!r} has no launch configuration or launch template")
    ref = ({"LaunchTemplateId": spec["LaunchTemplateId"]} if spec.get("LaunchTemplateId")
           else {"LaunchTemplateName": spec["LaunchTemplateName"]})
    version = spec.get("Version") or "$Default"
    versions = ec2.describe_launch_template_versions(**ref, Versions=[version])["LaunchTemplateVersions"]
    if not versions:
        raise LaunchSourceError(f"launch template {ref} version {version} of {name!r} does not exist")
    return LaunchSource("launch_template", versions[0])
