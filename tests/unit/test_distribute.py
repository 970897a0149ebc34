"""[pools.NAME.distribute]: the keys, and every bad value named by file, pool and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bake.errors import ConfigError
from bake.model.config import load_config
from bake.model.regions import REGIONS

POOL = """
region = "us-east-1"

[pools.cpu]
base_ami = "ami-ekslinux"
images = ["python:3.12"]

[pools.cpu.distribute]
"""

GOOD = POOL + """
regions = ["eu-west-1", "us-west-2"]
kms_key_ids = { eu-west-1 = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", us-west-2 = "alias/ami" }
accounts = ["111122223333"]
organizations = ["arn:aws:organizations::123456789012:organization/o-abcde12345"]
organizational_units = ["arn:aws:organizations::123456789012:ou/o-abcde12345/ou-ab12-cdef3456"]
ssm_parameter = "/eks/nodes/cpu"
"""


def load(tmp_path: Path, text: str):
    p = tmp_path / "bake.toml"
    p.write_text(text)
    return load_config(p)


def test_a_full_distribute_table_is_read_into_the_pool(tmp_path):
    d = load(tmp_path, GOOD).pools["cpu"].distribute
    assert d.regions == ["eu-west-1", "us-west-2"]
    assert d.kms_key_ids["us-west-2"] == "alias/ami"
    assert d.accounts == ["111122223333"] and d.shared
    assert d.ssm_parameter == "/eks/nodes/cpu"
    # The bake's own region, listed, is the original: no copy of it.
    assert d.copy_regions("eu-west-1") == ["us-west-2"]


def test_no_distribute_table_means_no_copies_and_no_sharing(tmp_path):
    d = load(tmp_path, POOL.replace("[pools.cpu.distribute]", "")).pools["cpu"].distribute
    assert d.regions == [] and not d.shared and d.ssm_parameter is None


def test_defaults_may_hold_a_distribute_table(tmp_path):
    text = POOL.replace("[pools.cpu.distribute]", "") + '\n[defaults.distribute]\nregions = ["eu-west-1"]\n'
    assert load(tmp_path, text).pools["cpu"].distribute.regions == ["eu-west-1"]


@pytest.mark.parametrize("body,where,says", [
    ('regions = ["eu-west-9"]', "pools.cpu.distribute.regions", "'eu-west-9' is not an AWS Region (did you mean"),
    ('regions = ["eu-west-1", "eu-west-1"]', "pools.cpu.distribute.regions", "listed twice"),
    ('regions = ["eu-west-1"]\nkms_key_ids = { us-west-2 = "alias/ami" }', "pools.cpu.distribute",
     "kms_key_ids names 'us-west-2', which is not in regions"),
    ('regions = ["eu-west-1"]\nkms_key_ids = { eu-west-1 = "my key" }', "pools.cpu.distribute.kms_key_ids",
     "is not a KMS key id, alias or ARN"),
    ('regions = ["eu-west-1"]\nkms_key_ids = { eu-west-1 = "arn:aws:kms:us-east-1:123456789012:key/x" }',
     "pools.cpu.distribute.kms_key_ids", "is a key of us-east-1"),
    ('accounts = ["12345678901"]', "pools.cpu.distribute.accounts", "'12345678901' is not an AWS account id"),
    ('accounts = ["1234567890123"]', "pools.cpu.distribute.accounts", "not an AWS account id"),
    ('organizations = ["o-abcde12345"]', "pools.cpu.distribute.organizations", "not an organization ARN"),
    ('organizational_units = ["arn:aws:organizations::123456789012:organization/o-abcde12345"]',
     "pools.cpu.distribute.organizational_units", "not an organizational unit ARN"),
    ('ssm_parameter = "eks/cpu"', "pools.cpu.distribute.ssm_parameter", "not an SSM parameter name"),
    ('ssm_parameter = "/aws/service/eks/x"', "pools.cpu.distribute.ssm_parameter", "not under /aws"),
    ('region = ["eu-west-1"]', "pools.cpu.distribute", "unknown key 'region' (did you mean 'regions'?)"),
    ('regions = "eu-west-1"', "pools.cpu.distribute.regions", "list"),
])
def test_bad_distribute_values_name_file_pool_and_key(tmp_path, body, where, says):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, POOL + body + "\n")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'bake.toml'}: {where}: "), msg
    assert says in msg, msg


def test_the_region_list_holds_every_region_botocore_knows():
    """The hand-kept list against the installed botocore's endpoint data: a Region AWS opened
    since shows here as a failure naming it."""
    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    known = {r for p in data["partitions"] if p["partition"] in ("aws", "aws-us-gov", "aws-cn") for r in p["regions"]}
    assert known - REGIONS == set()


def test_node_region_may_be_the_bake_region_or_a_distribute_region(tmp_path):
    cfg = load(tmp_path, GOOD + '\n[pools.gpu]\nbase_ami = "ami-ekslinux"\nimages = ["python:3.12"]\nnode_region = "us-east-1"\n'
               '[pools.gpu.asg]\navailability_zones = ["us-east-1a"]\n').pools
    assert cfg["gpu"].rollout.node_region == "us-east-1"
    cfg = load(tmp_path, GOOD.replace("[pools.cpu.distribute]", 'node_region = "eu-west-1"\n[pools.cpu.distribute]')
               + '[pools.cpu.asg]\navailability_zones = ["eu-west-1a"]\n').pools
    assert cfg["cpu"].rollout.node_region == "eu-west-1"


@pytest.mark.parametrize("value,where,says", [
    ("eu-west-9", "pools.cpu.node_region", "'eu-west-9' is not an AWS Region"),
    ("ap-south-1", "pools.cpu.node_region", "'ap-south-1' gets no copy of the AMI (baked in us-east-1): "
                                            "add it to [pools.cpu.distribute] regions"),
])
def test_a_node_region_without_the_ami_is_refused(tmp_path, value, where, says):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace("[pools.cpu.distribute]", f'node_region = "{value}"\n[pools.cpu.distribute]')
             + '[pools.cpu.asg]\navailability_zones = ["eu-west-1a"]\n')
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'bake.toml'}: {where}: ") and says in msg, msg
