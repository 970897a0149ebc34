"""Which EC2 instance types a launch configuration cannot use: those released after 2022-12-31.

AWS: "As of January 1, 2023, new Amazon EC2 instance types are no longer supported in launch
configurations. This includes support for any instance types added to an AWS Region after the
initial Region launch." (Amazon EC2 Auto Scaling User Guide, "Auto Scaling launch configurations",
https://docs.aws.amazon.com/autoscaling/ec2/userguide/LaunchConfiguration.html, read 2026-12-06.)
AWS answers such a CreateLaunchConfiguration with ``ValidationError: The specified instance type
m7a.xlarge is not valid`` (as users quote it: aws/amazon-ecs-ami#188, aws/aws-cdk#28459).

AWS publishes no list, so this one is derived from the release (general availability) dates AWS
announced for each family; it is data, kept here once, read by the config check
(``bake.model.config``) and by the strict sandbox (``bake_sandbox.moto_strict``):

- every family of the seventh generation or later (the digit after the family letters: m7g,
  c7i-flex, r7iz, i7ie, m8g, u7i-12tb, ...) except ``c7g``, the first Graviton3 family, generally
  available in May 2022; the other seventh-generation families followed from February 2023
  (m7g/r7g) on;
- and the families of older generation numbers that were released in 2023 or later, listed below
  with the month AWS announced them.

What it does not know: a type added to one Region after that Region's launch (AWS refuses that
too), and families released after this table was written that do not follow the numbering (add
them here).
"""

from __future__ import annotations

import re

CUTOFF = "2022-12-31"
SOURCE = "https://docs.aws.amazon.com/autoscaling/ec2/userguide/LaunchConfiguration.html"

# Seventh generation or later, but generally available before 2023.
SEVENTH_GENERATION_BEFORE_2023 = {"c7g": "2022-05"}

# Older generation numbers released after 2022: family -> month of general availability.
RELEASED_AFTER_2022 = {
    "inf2": "2023-04",
    "trn1n": "2023-04",
    "trn2": "2024-12",
    "p5": "2023-07",
    "p5e": "2024-09",
    "p5en": "2024-12",
    "p6-b200": "2025-05",
    "g6": "2024-04",
    "gr6": "2024-04",
    "g6e": "2024-08",
    "g6f": "2025-07",
    "dl2q": "2023-09",
    "f2": "2024-12",
}

FAMILY = re.compile(r"^[a-z]+(?P<generation>\d+)")


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def released_after_2022(instance_type: str) -> str | None:
    """Why ``instance_type`` is newer than launch configurations allow, or None when it is not
    known to be."""
    family = family_of(instance_type)
    if family in RELEASED_AFTER_2022:
        return f"the {family} family was released in {RELEASED_AFTER_2022[family]}"
    m = FAMILY.match(family)
    if m and int(m.group("generation")) >= 7 and family not in SEVENTH_GENERATION_BEFORE_2023:
        return f"{family} is a family of the seventh generation or later, released after 2022"
    return None


def launch_configuration_refusal(instance_type: str) -> str | None:
    """The message a launch configuration with ``instance_type`` gets, or None when it may use it."""
    why = released_after_2022(instance_type)
    if why is None:
        return None
    return (f'launch = "configuration" cannot use instance type {instance_type!r}: {why}, and launch '
            f"configurations support no instance type released after {CUTOFF} ({SOURCE}); "
            f'use launch = "template"')
