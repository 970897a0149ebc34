"""`bake.check`: why a pool is not current, from the planner's decision and the lock entry (pure;
the CLI against the sandbox is tests/e2e/test_plan_check.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bake.check import check, explain, summary
from bake.model.config import PoolConfig
from bake.model.lock import AmiRecord, ImageDigest, LockData, LockEntry, Pin, PoolLock
from bake.model.refs import parse_reference
from bake.plan import PoolPlan
from bake.registry import ResolvedImage

ROOT = Path(__file__).resolve().parents[2]
A, B, C = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
POOL = PoolConfig(name="cpu", base_ami="ssm:/eks/ami", images=["r.example/app:v1", "r.example/tool:v2"])


def plan(action: str, base: str = "ami-00000001", digests: dict[str, str] | None = None, fp: str = "sha256:new",
         ami: str | None = None, reason: str = "base AMI, images or recipe changed") -> PoolPlan:
    digests = digests or {"r.example/app:v1": A, "r.example/tool:v2": A}
    images = tuple(ResolvedImage(parse_reference(r), d, None) for r, d in digests.items())
    return PoolPlan(POOL, "us-east-1", base, images, fp, action, reason,  # type: ignore[arg-type]
                    existing=AmiRecord(ami) if ami else None)


def entry(base: str = "ami-00000001", digests: dict[str, str] | None = None, fp: str = "sha256:old",
          runtime: str = "containerd") -> LockEntry:
    digests = digests or {"r.example/app:v1": A, "r.example/tool:v2": A}
    return LockEntry(ami_id="ami-0baked00001", region="us-east-1", fingerprint=fp, base_ami=base,
                     images=[ImageDigest(ref=r, digest=d) for r, d in digests.items()], built_at="2026-11-30T00:00:00Z",
                     runtime=runtime)


def test_skip_and_pinned_are_current() -> None:
    assert explain(plan("skip", fp="sha256:old"), PoolLock(current=entry())) == ()
    pin = Pin(ami_id="ami-0baked00001", reason="rollback", at="t", fingerprint="sha256:new")
    assert explain(plan("pinned"), PoolLock(current=entry(), pinned=pin)) == ()


def test_moved_tags_added_and_removed_images() -> None:
    now = plan("bake", digests={"r.example/app:v1": B, "r.example/new:v1": C})
    assert explain(now, PoolLock(current=entry())) == (
        f"image r.example/app:v1: tag moved, {A} -> {B}",
        f"image r.example/new:v1: added ({C})",
        "image r.example/tool:v2: removed",
    )


def test_new_base_ami_names_both_and_the_source() -> None:
    assert explain(plan("bake", base="ami-00000002"), PoolLock(current=entry())) == (
        "base AMI ami-00000001 -> ami-00000002 (from ssm:/eks/ami)",)


def test_runtime_and_recipe() -> None:
    assert explain(plan("bake"), PoolLock(current=entry(runtime="docker"))) == ("runtime docker -> containerd",)
    assert explain(plan("bake"), PoolLock(current=entry())) == (
        "same base AMI, digests and aliases: the recipe version, the GPU settings or prewarm changed",)
    baked_with_prewarm = entry().model_copy(update={"prewarm": False})  # POOL has the default, true
    assert explain(plan("bake"), PoolLock(current=baked_with_prewarm)) == ("prewarm false -> true",)


def test_changed_aliases_name_what_was_added_and_removed() -> None:
    """Aliases are in the fingerprint: plan --check says which image's aliases changed."""
    old = entry()
    old.images[0].aliases = ["m.example/app:v1", "m.example/app:old"]
    now = replace(plan("bake"), aliases={"r.example/app:v1": ["m.example/app:v1", "m.example/app:new"],
                                         "r.example/tool:v2": ["m.example/tool:v2"]})
    assert explain(now, PoolLock(current=old)) == (
        "image r.example/app:v1: aliases added m.example/app:new; removed m.example/app:old",
        "image r.example/tool:v2: aliases added m.example/tool:v2",
    )
    same = replace(plan("bake"), aliases={"r.example/app:v1": ["m.example/app:old", "m.example/app:v1"]})
    assert explain(same, PoolLock(current=old)) == (
        "same base AMI, digests and aliases: the recipe version, the GPU settings or prewarm changed",)


def test_lost_lock_reuse_and_new_pool() -> None:
    assert explain(plan("reuse", ami="ami-0found00001"), PoolLock()) == (
        "no lock entry for this pool; ami-0found00001 already has this fingerprint (its bake:fingerprint tag): "
        "`python -m bake build` records it, launching nothing",)
    assert explain(plan("bake"), PoolLock()) == ("no lock entry for this pool: a new pool",)


def test_same_fingerprint_but_the_ami_is_gone_gives_the_planners_reason() -> None:
    gone = plan("bake", fp="sha256:old", reason="the lock's ami-0baked00001 is no longer available")
    assert explain(gone, PoolLock(current=entry())) == ("the lock's ami-0baked00001 is no longer available",)


def test_summary_names_each_stale_pool_and_its_action() -> None:
    lock = LockData(pools={"cpu": PoolLock(current=entry())})
    assert summary(check([plan("skip", fp="sha256:old")], lock)) == (
        "check: every pool's lock entry is current (skip or pinned)")
    text = summary(check([plan("bake", base="ami-00000002")], lock))
    assert text.startswith("check: 1 pool(s) not current: cpu (bake).") and "new pull request" in text


def test_check_flag_is_documented_and_config_errors_stay_2(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "bake", "plan", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert "--check" in r.stdout and "4 (--check only)" in r.stdout
    cfg = tmp_path / "bake.toml"
    cfg.write_text('[pools.cpu]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["python"]\nruntim = "docker"\n')
    r = subprocess.run([sys.executable, "-m", "bake", "plan", "--check", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown key 'runtim'" in r.stderr
    readme = (ROOT / "README.md").read_text()
    assert "| 4 | `plan --check`" in readme, "README's exit code table documents 4"
