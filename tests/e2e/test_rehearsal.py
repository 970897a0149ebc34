"""The pipeline rehearsal (scripts/rehearse_pipeline.py) passes against the sandbox, and what it
leaves is checked here on its own: that it ran the workflows' own steps (read from
examples/github-actions/*.yml here, independently), the jobs' results and outputs, the git
history a reviewer would see, the two reviews, the lock, and the Auto Scaling group's AMI in moto
after the last apply. A changed workflow changes what the rehearsal runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.usefixtures("clean_after")]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "rehearse_pipeline.py"
WORKFLOWS = ROOT / "examples" / "github-actions"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def asg_ami(sandbox, name: str) -> str:
    spec = sandbox.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["LaunchTemplate"]
    version = sandbox.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])["LaunchTemplateVersions"][0]
    return version["LaunchTemplateData"]["ImageId"]


def rehearse(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=840)


def run_steps(workflow: str, job: str) -> list[dict]:
    """The job's steps a runner executes as scripts (not actions, not the pip install)."""
    steps = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job]["steps"]
    return [s for s in steps if "run" in s and not s["run"].strip().startswith("python -m pip install")]


def job_log(out: str, workflow: str, job: str) -> list[str]:
    """Every printed line of that workflow's job, in order (each run of it)."""
    return [line for line in out.splitlines() if line.startswith(f"[{workflow} {job}] ")]


def test_rehearsal_of_pull_request_main_and_nightly_rebake(sandbox, tmp_path):
    p = rehearse(tmp_path)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-4000:]
    out = p.stdout
    pool = re.search(r"rehearsal: passed, \d+ steps in \d+s; pool (\S+);", out).group(1)

    # Every job ran the workflow's own steps, in its order, each script as the YAML has it.
    ran = {("pull-request.yml", "bake"): 1, ("pull-request.yml", "review"): 1, ("main.yml", "check"): 2,
           ("main.yml", "apply"): 2, ("scheduled.yml", "check"): 1, ("scheduled.yml", "rebake"): 1,
           ("scheduled.yml", "review"): 1}
    for (workflow, job), times in ran.items():
        log = job_log(out, workflow, job)
        names = [s["name"] for s in run_steps(workflow, job)]
        assert names, (workflow, job)
        done = [line.split("] ", 1)[1].rsplit(" -> exit ", 1)[0] for line in log if " -> exit 0 (" in line]
        assert done == names * times, (workflow, job, done)
        assert sum(line.startswith(f"[{workflow} {job}] job success") for line in log) == times, log
        for s in run_steps(workflow, job):
            for line in s["run"].strip().splitlines():
                assert f"    $ {line}" in out, (workflow, job, line)
    assert "[scheduled.yml lifecycle] not run here" in out
    assert "[scheduled.yml check] job success; outputs {'stale': 'true'}" in out
    assert "[scheduled.yml rebake] job success; outputs {'changed': 'true'}" in out
    nightly = out.split("[scheduled.yml check] Check the lock", 1)[1]
    assert "tag moved, sha256:" in nightly.split("[scheduled.yml check] job success", 1)[0]

    origin, jobs = tmp_path / "origin.git", tmp_path / "jobs"
    lock = json.loads(git(origin, "show", "main:amis.lock.json"))["pools"][pool]
    first, second = lock["history"][0]["ami_id"], lock["current"]["ami_id"]
    assert first != second
    assert lock["history"][0]["images"][0]["digest"] != lock["current"]["images"][0]["digest"], "the rebake's new digest"

    # what a reviewer saw: the jobs' lock commits, pushed to their branches, merged into main
    def subjects(*rev: str) -> list[str]:
        return git(origin, "log", "--format=%s", *rev).splitlines()

    assert subjects("--first-parent", "main") == [
        "Merge pull request from bake/rebake", f"Merge pull request from add-{pool}", "start"]
    assert subjects("main~1..bake/rebake") == ["amis.lock.json: nightly rebake (image tags moved or a new base AMI)"]
    assert subjects("main~2..add-" + pool) == ["amis.lock.json: AMIs baked for this pull request",
                                               f"bake.toml: pool {pool}"]
    assert git(origin, "log", "-1", "--format=%an", "bake/rebake").strip() == "github-actions[bot]"

    [pr_review] = jobs.glob("*-pull-request-review/runner-temp/review.md")
    pr = pr_review.read_text()
    assert f"### Pool `{pool}` — new pool" in pr and f"| AMI | — | `{first}` |" in pr
    rebake = (jobs / "gh-body.md").read_text()  # the body the review job gave `gh pr create`
    assert "pr create --head bake/rebake --base main" in (jobs / "gh.log").read_text()
    assert f"### Pool `{pool}` — AMI changes" in rebake
    assert f"| AMI | `{first}` | `{second}` |" in rebake
    assert f"`aws_launch_template.{pool}` (update): image_id `{first}` → `{second}`" in rebake
    assert "0 to replace, 0 to destroy" in rebake

    # the last apply rolled the reviewed AMI out
    assert asg_ami(sandbox, pool) == second


def test_a_changed_workflow_changes_the_rehearsal(sandbox, tmp_path):
    # The rehearsal runs what the YAML says: a pull request bake job asking for a pool that does
    # not exist fails there (exit 2 from bake), and nothing after it runs.
    changed = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, changed)
    pr = changed / "pull-request.yml"
    pr.write_text(pr.read_text().replace("run: python -m bake build\n", "run: python -m bake build --pool no-such-pool\n"))
    p = rehearse(tmp_path / "run", "--workflows", str(changed))
    assert p.returncode == 1, p.stdout[-4000:]
    assert "[pull-request.yml bake] Bake the pools whose images or base AMI changed -> exit 2" in p.stdout
    assert "    $ python -m bake build --pool no-such-pool" in p.stdout
    assert "[pull-request.yml review] skipped" in p.stdout
    assert "rehearsal: FAILED: pull-request.yml: job(s) bake failed" in p.stderr
