"""The pipeline rehearsal (scripts/rehearse_pipeline.py) passes against the sandbox, and what it
leaves is checked here on its own: the git history a reviewer would see, the two reviews, the
lock, and the Auto Scaling group's AMI in moto after the last apply."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.usefixtures("clean_after")]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rehearse_pipeline.py"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def asg_ami(sandbox, name: str) -> str:
    spec = sandbox.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["LaunchTemplate"]
    version = sandbox.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])["LaunchTemplateVersions"][0]
    return version["LaunchTemplateData"]["ImageId"]


def test_rehearsal_of_pull_request_main_and_nightly_rebake(sandbox, tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(tmp_path)],
                       capture_output=True, text=True, timeout=840)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    out = p.stdout
    pool = re.search(r"rehearsal: passed, \d+ steps in \d+s; pool (\S+);", out).group(1)

    # the exit codes the workflows branch on, in the order the jobs run
    codes = re.findall(r"^\[([a-z /]+)\] python -m bake plan --check -> exit (\d+)", out, flags=re.MULTILINE)
    assert codes == [("main / check", "0"), ("nightly / check", "4"), ("main / check", "0")]
    assert "tag moved, sha256:" in out.split("[nightly / check]", 1)[1]

    repo, reviews = tmp_path / "repo", tmp_path / "out"
    lock = json.loads(git(repo, "show", "main:amis.lock.json"))["pools"][pool]
    first, second = lock["history"][0]["ami_id"], lock["current"]["ami_id"]
    assert first != second
    assert lock["history"][0]["images"][0]["digest"] != lock["current"]["images"][0]["digest"], "the rebake's new digest"

    # what a reviewer saw: the lock commits on their branches, merged into main
    def subjects(*rev: str) -> list[str]:
        return git(repo, "log", "--format=%s", *rev).splitlines()

    assert subjects("--first-parent", "main") == [
        "Merge pull request from bake/rebake", f"Merge pull request from add-{pool}", "start"]
    assert subjects("main~1..bake/rebake") == ["amis.lock.json: nightly rebake (image tags moved or a new base AMI)"]
    assert subjects("main~2..add-" + pool) == ["amis.lock.json: AMIs baked for this pull request",
                                               f"bake.toml: pool {pool}"]
    assert git(repo, "branch", "--format=%(refname:short)").split() == ["add-" + pool, "bake/rebake", "main"]

    pr = (reviews / "pr-review.md").read_text()
    assert f"### Pool `{pool}` — new pool" in pr and f"| AMI | — | `{first}` |" in pr
    rebake = (reviews / "rebake-review.md").read_text()
    assert f"### Pool `{pool}` — AMI changes" in rebake
    assert f"| AMI | `{first}` | `{second}` |" in rebake
    assert f"`aws_launch_template.{pool}` (update): image_id `{first}` → `{second}`" in rebake
    assert "0 to replace, 0 to destroy" in rebake

    # the last apply rolled the reviewed AMI out
    assert asg_ami(sandbox, pool) == second
