"""The whole story with nothing synthetic: a real bake, deploy, a changed image, a real rebake,
the plan a reviewer sees and `bake review` on it, apply, `bake rollback`, the plan back and its
review (and the rebake's plan, now stale, flagged), apply; the pin holds, the last plan is empty
and nothing is left running. Terraform runs for real against the sandbox's moto (the AMIs in the
lock are the ones the bakes made)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.cli import run_bake
from support.terraform import Project, asg_image, changes, needs_terraform, steady

from bake.model.lock import LockFile

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, needs_terraform(), pytest.mark.usefixtures("clean_after")]

USER_DATA = "---\\napiVersion: node.eks.aws/v1alpha1\\nkind: NodeConfig\\n"


def review(project: Project, plan: dict, base_lock: Path, name: str) -> tuple[dict, dict]:
    """`bake review` as the pipeline runs it on the plan's JSON: (the whole review, this pool's)."""
    path = project.dir / f"plan-{len(list(project.dir.glob('plan-*.json')))}.json"
    path.write_text(json.dumps(plan))
    r = run_bake("review", "--plan", str(path), "--base-lock", str(base_lock), "--lock", str(project.lock),
                 "--format", "json", cwd=project.dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out, next(p for p in out["pools"] if p["pool"] == name)


def test_bake_deploy_rebake_rollback(sandbox, tmp_path):
    info = sandbox.info
    name = f"story{tmp_path.name[-6:].replace('_', '').lower()}"
    sandbox.push_image("env/e2e-story", "v1", size_mb=1)
    ref = f"{info.registry}/env/e2e-story:v1"
    project = Project(dir=tmp_path, env=sandbox.env())
    project.write_config(f"""
        region = "us-east-1"
        [state]
        backend = "local"
        path = "{tmp_path / 'terraform.tfstate'}"
        [pools.{name}]
        base_ami = "ssm:{info.base_ami_ssm_parameter}"
        images = ["{ref}"]
        ssh_host = "{info.ssh_host}"
        ssh_cidrs = ["127.0.0.1/32"]
        root_volume_size = 20
        [pools.{name}.launch_template]
        user_data = "{USER_DATA}"
        [pools.{name}.asg]
        min_size = 1
        max_size = 2
        availability_zones = ["us-east-1a"]
    """)

    # 1. bake and deploy
    project.bake("build")
    first = LockFile(project.lock).read().pools[name].current.ami_id
    project.synth()
    project.init()
    project.plan_json()
    project.apply_plan()
    assert asg_image(sandbox, name) == first

    # 2. the image changes under its tag: a real rebake, then the reviewer's plan
    sandbox.push_image("env/e2e-story", "v1", size_mb=1)
    base = shutil.copy(project.lock, tmp_path / "base-1.json")  # the lock on the PR's base branch
    project.bake("build")
    pool = LockFile(project.lock).read().pools[name]
    second = pool.current.ami_id
    assert second != first and [h.ami_id for h in pool.history] == [first]
    project.synth()
    rebake_plan = project.plan_json()
    plan = changes(rebake_plan)
    lt, asg = plan[f"aws_launch_template.{name}"], plan[f"aws_autoscaling_group.{name}"]
    assert lt["actions"] == ["update"]
    assert (lt["before"]["image_id"], lt["after"]["image_id"]) == (first, second)
    assert asg["actions"] == ["update"], "the ASG moves to the new template version in place"
    assert not [a for a, c in plan.items() if "delete" in c["actions"]], "nothing is destroyed or replaced"
    whole, mine = review(project, rebake_plan, Path(base), name)
    assert (mine["status"], mine["ami_before"], mine["ami_after"]) == ("changed", first, second)
    assert mine["rollout"] == "new-nodes-only" and whole["flagged"] == [] and whole["warnings"] == []
    assert [i["change"] for i in mine["images"]] == ["changed"]
    project.apply_plan()
    assert asg_image(sandbox, name) == second

    # 3. roll back: one command, one more plan
    base = shutil.copy(project.lock, tmp_path / "base-2.json")
    out = project.bake("rollback", name)
    assert first in out.stdout
    pool = LockFile(project.lock).read().pools[name]
    assert pool.current.ami_id == first and pool.pinned.ami_id == first
    project.synth()
    rollback_plan = project.plan_json()
    lt = changes(rollback_plan)[f"aws_launch_template.{name}"]
    assert lt["actions"] == ["update"] and (lt["before"]["image_id"], lt["after"]["image_id"]) == (second, first)
    whole, mine = review(project, rollback_plan, Path(base), name)
    assert (mine["ami_before"], mine["ami_after"]) == (second, first) and mine["pinned"].startswith(first)
    assert whole["warnings"] == []
    # the rebake's plan, reviewed against the rolled-back lock, is stale: it would undo the rollback
    whole, mine = review(project, rebake_plan, Path(base), name)
    assert [w for w in whole["warnings"] if "stale plan" in w and second in w and first in w], whole["warnings"]
    project.apply_plan()
    assert asg_image(sandbox, name) == first

    # 4. the pin holds: build neither bakes nor rolls forward
    again = project.bake("build")
    assert f"{name}\tpinned\t{first}" in again.stdout
    assert LockFile(project.lock).read().pools[name].current.ami_id == first

    # 5. the deployed stack is what the lock says: the last plan is empty
    project.synth()
    assert steady(project.plan_json()) == {}
