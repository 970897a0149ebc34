"""``bake review`` on real `terraform show -json` plans made against moto, and on edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bake.model.lock import LockData, Pin, PoolLock
from bake.review import MARKER, build_review, render_markdown
from review_helpers import digest, entry, write_lock
from support.cli import run_bake


@pytest.fixture
def locks(workspace: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    w = workspace
    base = write_lock(tmp_path / "base.json", {
        "general": entry(w.a, "ami-base00001", [("nginx:1.27", digest("1")), ("redis:7", digest("2"))]),
        "batch": entry(w.c, "ami-base00001", [("busybox:1.36", digest("3"))]),
    })
    head = write_lock(tmp_path / "head.json", {
        "general": entry(w.b, "ami-base00002", [("nginx:1.28", digest("4")), ("ghcr.io/acme/agent:2.0", digest("5"))]),
        "batch": entry(w.c, "ami-base00001", [("busybox:1.36", digest("3"))]),
    })
    head_d = write_lock(tmp_path / "head-d.json", {
        "general": entry(w.b, "ami-base00002", [("nginx:1.28", digest("4")), ("ghcr.io/acme/agent:2.0", digest("5"))]),
        "batch": entry(w.d, "ami-base00001", [("busybox:1.36", digest("6"))]),
    })
    return SimpleNamespace(base=base, head=head, head_d=head_d)


def test_ami_change_without_refresh(workspace: SimpleNamespace, locks: SimpleNamespace, tmp_path: Path) -> None:
    w = workspace
    r = run_bake("review", "--plan", str(w.plan_b), "--base-lock", str(locks.base), "--lock", str(locks.head), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    md = r.stdout
    assert md.startswith(MARKER)
    assert "[!WARNING]" not in md and "[!CAUTION]" not in md
    assert "**Plan:** 0 to create, 2 to update, 0 to replace, 0 to destroy, 0 to import" in md
    general = md.split("### Pool `general`")[1].split("### Pool")[0]
    assert "AMI changes" in general
    assert f"| AMI | `{w.a}` | `{w.b}` |" in general
    assert "| base AMI | `ami-base00001` | `ami-base00002` |" in general
    assert "| `docker.io/library/nginx` | changed | `1.27` `sha256:111111111111` | `1.28` `sha256:444444444444` |" in general
    assert "| `docker.io/library/redis` | removed |" in general
    assert "| `ghcr.io/acme/agent` | added | — | `2.0` `sha256:555555555555` |" in general
    assert "only new nodes get the new AMI" in general
    assert f"`aws_launch_template.nodepool-general_lt` (update): image_id `{w.a}` → `{w.b}`" in general
    assert "### Pool `batch` — unchanged" in md
    details = md.split("<details>")[1]
    assert "| update | `aws_autoscaling_group.workers_asg` | general |" in details  # tied via its reference
    assert "| update | `aws_launch_template.nodepool-general_lt` | general |" in details
    assert details.rstrip().endswith("</details>")

    j = run_bake("review", "--plan", str(w.plan_b), "--base-lock", str(locks.base), "--lock", str(locks.head),
                 "--format", "json", cwd=tmp_path)
    assert j.returncode == 0, j.stderr
    data = json.loads(j.stdout)
    assert data["marker"] == MARKER
    assert data["counts"] == {"create": 0, "update": 2, "replace": 0, "destroy": 0, "import": 0}
    pools = {p["pool"]: p for p in data["pools"]}
    assert pools["general"]["ami_before"] == w.a and pools["general"]["ami_after"] == w.b
    assert pools["general"]["rollout"] == "new-nodes-only"
    assert {i["image"]: i["change"] for i in pools["general"]["images"]} == {
        "docker.io/library/nginx": "changed", "docker.io/library/redis": "removed", "ghcr.io/acme/agent": "added"}
    assert pools["batch"]["status"] == "unchanged" and pools["batch"]["rollout"] == "none"
    assert data["flagged"] == []


def test_a_plan_older_than_the_lock_is_called_stale(workspace: SimpleNamespace, locks: SimpleNamespace, tmp_path: Path) -> None:
    """plan-b sets general's template to B; the lock was rolled back to A since."""
    w = workspace
    rolled_back = write_lock(tmp_path / "rolled-back.json", {
        "general": entry(w.a, "ami-base00001", [("nginx:1.27", digest("1"))]),
        "batch": entry(w.c, "ami-base00001", [("busybox:1.36", digest("3"))]),
    })
    r = run_bake("review", "--plan", str(w.plan_b), "--base-lock", str(locks.head), "--lock", str(rolled_back),
                 "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = json.loads(r.stdout)["warnings"]
    assert warnings == [f"pool general: the plan sets aws_launch_template.nodepool-general_lt to {w.b}, but the lock's "
                        f"current AMI is {w.a}: a stale plan (made before the last build or rollback?); "
                        "synthesize and plan again"]
    md = run_bake("review", "--plan", str(w.plan_b), "--base-lock", str(locks.head), "--lock", str(rolled_back), cwd=tmp_path)
    assert "> [!CAUTION]\n> pool general: the plan sets" in md.stdout and "a stale plan" in md.stdout


def test_replacement_is_flagged_first_and_refresh_replaces_nodes(
    workspace: SimpleNamespace, locks: SimpleNamespace, tmp_path: Path
) -> None:
    w = workspace
    out = tmp_path / "comment.md"
    r = run_bake("review", "--plan", str(w.plan_refresh), "--base-lock", str(locks.base), "--lock", str(locks.head_d),
                 "--output", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    md = out.read_text()
    warning, plan_line, first_pool = md.index("[!WARNING]"), md.index("**Plan:**"), md.index("### Pool")
    assert warning < plan_line < first_pool
    top = md[warning:plan_line]
    assert "- **replace** `aws_launch_configuration.nodepool-batch_lc` (pool `batch`)" in top
    assert "1 to replace" in md[plan_line:first_pool]
    general = md.split("### Pool `general`")[1].split("### Pool")[0]
    assert "nodes are replaced now: instance refresh on `aws_autoscaling_group.workers_asg`" in general
    batch = md.split("### Pool `batch`")[1].split("<details>")[0]
    assert f"| AMI | `{w.c}` | `{w.d}` |" in batch
    assert "| `docker.io/library/busybox` | changed | `1.36` `sha256:333333333333` | `1.36` `sha256:666666666666` |" in batch
    assert "only new nodes" in batch  # a launch configuration alone replaces no running node


def test_no_base_lock_means_every_pool_is_new(workspace: SimpleNamespace, locks: SimpleNamespace, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")  # what `git show origin/main:amis.lock.json > f || true` leaves
    for extra in ([], ["--base-lock", str(empty)], ["--base-lock", str(tmp_path / "absent.json")]):
        r = run_bake("review", "--plan", str(workspace.plan_b), "--lock", str(locks.head), *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "### Pool `general` — new pool" in r.stdout and "### Pool `batch` — new pool" in r.stdout
        assert f"| AMI | — | `{workspace.b}` |" in r.stdout


def test_plan_from_stdin_and_usage_errors(workspace: SimpleNamespace, locks: SimpleNamespace, tmp_path: Path) -> None:
    r = run_bake("review", "--plan", "-", "--lock", str(locks.head), "--format", "json", cwd=tmp_path,
                 stdin=workspace.plan_b.read_text())
    assert r.returncode == 0 and json.loads(r.stdout)["counts"]["update"] == 2
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    r = run_bake("review", "--plan", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and "not JSON" in r.stderr
    bad.write_text("{}")
    r = run_bake("review", "--plan", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and "terraform show -json" in r.stderr
    r = run_bake("review", "--plan", str(tmp_path / "absent.json"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot read the plan" in r.stderr


def _rc(address: str, type_: str, actions: list[str], before: dict | None = None, after: dict | None = None,
        importing: bool = False, reason: str | None = None) -> dict:
    change = {"actions": actions, "before": before, "after": after, "after_unknown": {}}
    if importing:
        change["importing"] = {"id": "lt-0123"}
    rc = {"address": address, "mode": "managed", "type": type_, "name": address.split(".")[-1], "change": change}
    return {**rc, "action_reason": reason} if reason else rc


def test_counts_imports_destroys_modules_and_longest_pool_name() -> None:
    plan = {
        "format_version": "1.2",
        "resource_changes": [
            _rc("module.pools.aws_launch_template.gpu-large_lt", "aws_launch_template", ["update"],
                {"image_id": "ami-00000001"}, {"image_id": "ami-00000002"}),
            _rc("aws_launch_template.gpu_lt", "aws_launch_template", ["no-op"], {"image_id": "ami-x"}, {"image_id": "ami-x"},
                importing=True),
            _rc("aws_autoscaling_group.gpu_asg[0]", "aws_autoscaling_group", ["delete"], {"name": "gpu"}, None),
            _rc("aws_security_group.nodes", "aws_security_group", ["create"], None, {"name": "nodes"}),
            _rc("aws_launch_configuration.lc", "aws_launch_configuration", ["create", "delete"],
                {"image_id": "ami-00000003"}, {"image_id": "ami-00000004"}, reason="replace_because_cannot_update"),
            _rc("aws_iam_role.r", "aws_iam_role", ["update"], {}, {}, importing=True),
            {"address": "data.aws_ami.x", "mode": "data", "type": "aws_ami", "change": {"actions": ["read"]}},
        ],
    }
    base = LockData(pools={"gpu-large": PoolLock(current=entry("ami-00000001", "ami-b", [])),
                           "gpu": PoolLock(current=entry("ami-x", "ami-b", [])),
                           "legacy": PoolLock(current=entry("ami-00000003", "ami-b", []))})
    head = LockData(pools={"gpu-large": PoolLock(current=entry("ami-00000002", "ami-b", [])),
                           "gpu": PoolLock(current=entry("ami-x", "ami-b", []),
                                           pinned=Pin(ami_id="ami-x", reason="rolled back", at="2025-06-01T00:00:00Z")),
                           "legacy": PoolLock(current=entry("ami-00000004", "ami-b", []))})
    review = build_review(plan, base, head)
    assert review.counts == {"create": 1, "update": 2, "replace": 1, "destroy": 1, "import": 2}
    pools = {c.address: c.pool for c in review.changes}
    assert pools["module.pools.aws_launch_template.gpu-large_lt"] == "gpu-large"  # longest name wins
    assert pools["aws_launch_template.gpu_lt"] == "gpu"
    assert pools["aws_autoscaling_group.gpu_asg[0]"] == "gpu"
    assert pools["aws_launch_configuration.lc"] == "legacy"  # by the lock's AMI id alone
    assert pools["aws_security_group.nodes"] is None
    assert [(f["address"], f["action"]) for f in review.flagged] == [
        ("aws_autoscaling_group.gpu_asg[0]", "destroy"), ("aws_launch_configuration.lc", "replace")]
    md = render_markdown(review)
    assert "replace because cannot update" in md.split("**Plan:**")[0]
    assert "| import | `aws_launch_template.gpu_lt` | gpu |" in md
    assert "| update + import | `aws_iam_role.r` |  |" in md
    assert "Pinned: ami-x: rolled back" in md
    assert "data.aws_ami.x" not in md


def test_the_stacks_own_addresses_tie_exactly() -> None:
    # The stack names each pool's resources logical_id(pool) (bake.model.stack). A group whose
    # name contains another pool's longer name is still its own pool's; so is a digit-led pool.
    plan = {"format_version": "1.2", "resource_changes": [
        _rc("aws_autoscaling_group.gpu", "aws_autoscaling_group", ["update"], {"name": "gpu-large-spare"},
            {"name": "gpu-large-spare"}),
        _rc("aws_eks_node_group._1gpu", "aws_eks_node_group", ["update"], {"node_group_name": "gpu"},
            {"node_group_name": "gpu"}),
    ]}
    lock = LockData(pools={p: PoolLock(current=entry("ami-0000000" + str(i), "ami-b", []))
                           for i, p in enumerate(("gpu", "gpu-large", "1gpu"))})
    pools = {c.address: c.pool for c in build_review(plan, lock, lock).changes}
    assert pools == {"aws_autoscaling_group.gpu": "gpu", "aws_eks_node_group._1gpu": "1gpu"}


def test_lock_moves_but_plan_does_not_warns() -> None:
    plan = {"format_version": "1.2", "resource_changes": []}
    base = LockData(pools={"web": PoolLock(current=entry("ami-00000001", "ami-b", []))})
    head = LockData(pools={"web": PoolLock(current=entry("ami-00000002", "ami-b", []))})
    md = render_markdown(build_review(plan, base, head))
    assert "[!CAUTION]" in md and "the plan sets no launch template" in md
    assert "| — | no changes | |" in md
