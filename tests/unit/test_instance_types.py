"""The launch-configuration limit's table (bake.model.instance_types): released after 2022 or not."""

from __future__ import annotations

import pytest

from bake.model.instance_types import launch_configuration_refusal, released_after_2022

AFTER_2022 = ["m7i.large", "m7g.xlarge", "c7gn.large", "c7gd.medium", "r7iz.2xlarge", "c7i-flex.large",
              "m8g.large", "i7ie.xlarge", "u7i-12tb.224xlarge", "inf2.xlarge", "p5.48xlarge", "g6.xlarge",
              "g6e.2xlarge", "trn1n.32xlarge"]
# c7g: the first seventh-generation family, generally available in May 2022; the rest are older.
BEFORE_2023 = ["c7g.large", "m5.large", "m6i.large", "c6in.large", "g5.xlarge", "g4dn.xlarge", "p4d.24xlarge",
               "trn1.2xlarge", "t3.micro", "r6a.large", "x2iedn.xlarge"]


@pytest.mark.parametrize("instance_type", AFTER_2022)
def test_types_released_after_2022_are_refused_with_the_way_out(instance_type):
    assert released_after_2022(instance_type)
    message = launch_configuration_refusal(instance_type)
    assert message and instance_type in message and 'use launch = "template"' in message and "2022-12-31" in message


@pytest.mark.parametrize("instance_type", BEFORE_2023)
def test_types_released_before_2023_stay_allowed(instance_type):
    assert released_after_2022(instance_type) is None
    assert launch_configuration_refusal(instance_type) is None
