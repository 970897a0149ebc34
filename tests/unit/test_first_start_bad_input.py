"""Bad first-read settings: exit 2 from build, plan and synthesis alike, naming the file, the
pool and the key, before any AWS call (AWS points at a closed port: a call would fail otherwise)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

POOL = """region = "us-east-1"
[pools.cpu]
base_ami = "ami-0123456789abcdef0"
images = ["docker.io/library/nginx:1.27"]
[pools.cpu.asg]
availability_zones = ["us-east-1a"]
"""

CASES = {
    "rate below 100": ("[pools.cpu.launch_template]\nvolume_initialization_rate = 99\n",
                       "pools.cpu.launch_template.volume_initialization_rate", "greater than or equal to 100"),
    "rate above 300": ("[pools.cpu.launch_template]\nvolume_initialization_rate = 301\n",
                       "pools.cpu.launch_template.volume_initialization_rate", "less than or equal to 300"),
    "malformed zone": ('[pools.cpu.fast_snapshot_restore]\navailability_zones = ["us-east-1a", "useast1"]\n',
                       "pools.cpu.fast_snapshot_restore.availability_zones", "'useast1' is not an availability zone name"),
    "zone outside the region": ('[pools.cpu.fast_snapshot_restore]\navailability_zones = ["eu-west-1a"]\n',
                                "pools.cpu.fast_snapshot_restore.availability_zones",
                                "'eu-west-1a' is not in the region us-east-1"),
    "empty zone list": ("[pools.cpu.fast_snapshot_restore]\navailability_zones = []\n",
                        "pools.cpu.fast_snapshot_restore.availability_zones", "at least 1 item"),
    # The lock records the original AMI's snapshots only: a copy's are unknown to the stack.
    "nodes on a copy in another region": ('[pools.cpu.distribute]\nregions = ["eu-west-1"]\n'
                                          '[pools.cpu.fast_snapshot_restore]\navailability_zones = ["eu-west-1a"]\n',
                                          "pools.cpu.fast_snapshot_restore",
                                          "the pool's nodes live in node_region 'eu-west-1', on a copy of the AMI"),
    "rate with a launch configuration": ('[pools.cpu.launch_template]\nvolume_initialization_rate = 200\n',
                                         "pools.cpu", "a launch configuration has no such setting"),
    # AWS: no instance type released after 2022 in a launch configuration (bake.model.instance_types).
    "a 2023 type in a launch configuration": ("", "pools.cpu",
                                              "cannot use instance type 'm7i.large': m7i is a family of the seventh "
                                              "generation or later, released after 2022"),
    "a 2023 template type in a launch configuration": ('[pools.cpu.launch_template]\ninstance_type = "inf2.xlarge"\n',
                                                       "pools.cpu", "the inf2 family was released in 2023-04"),
    # Issue 24: a data-volume cache is mapped and mounted through a launch template; Bottlerocket
    # has only the data volume to hold it.
    "a data-volume cache with a launch configuration": ("", "pools.cpu",
                                                        'cache = "data-volume" needs launch = "template"'),
    "bottlerocket with an AMI cache": ("", "pools.cpu", 'os = "bottlerocket" needs cache = "data-volume"'),
}
# Keys of [pools.cpu] itself that a case needs beside its tables.
POOL_KEYS = {
    "nodes on a copy in another region": 'node_region = "eu-west-1"\n',
    "rate with a launch configuration": 'launch = "configuration"\n',
    "a 2023 type in a launch configuration": 'launch = "configuration"\ninstance_type = "m7i.large"\n',
    "a 2023 template type in a launch configuration": 'launch = "configuration"\n',
    "a data-volume cache with a launch configuration": 'cache = "data-volume"\nlaunch = "configuration"\n'
                                                       'instance_type = "m5.large"\n',
    "bottlerocket with an AMI cache": 'os = "bottlerocket"\n',
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["build", "plan", "synth"])
def test_bad_first_read_settings_exit_2_naming_file_pool_and_key(case, command, tmp_path):
    extra, key, why = CASES[case]
    text = POOL + extra
    text = text.replace("[pools.cpu.asg]", POOL_KEYS.get(case, "") + "[pools.cpu.asg]", 1)
    cfg = tmp_path / "bake.toml"
    cfg.write_text(text)
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",
           "BAKE_CONFIG": str(cfg), "BAKE_LOCK": str(tmp_path / "amis.lock.json"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "constructs")])}
    argv = ([sys.executable, str(ROOT / "main.py")] if command == "synth"
            else [sys.executable, "-m", "bake", command, "--config", str(cfg)])
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"{cfg}: {key}" in p.stderr and why in p.stderr, p.stderr
    if "launch configuration" in case and "2023" in case:  # names the limit and the way out
        assert "released after 2022-12-31" in p.stderr and 'use launch = "template"' in p.stderr
    assert not (tmp_path / "amis.lock.json").exists()
