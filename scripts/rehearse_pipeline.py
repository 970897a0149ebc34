#!/usr/bin/env python3
"""Rehearse the example pipeline (examples/github-actions/*.yml) against the local sandbox,
without GitHub: the jobs' own commands, in order, in a throw-away git repository.

  pull request  a branch adds a pool to bake.toml; bake build; commit amis.lock.json to the
                branch; bake plan; python main.py; terraform plan; bake review (base: main's lock)
  main          merge; plan --check says 0; python main.py; terraform plan and apply
  nightly       the image's tag moves; plan --check says 4; bake build on bake/rebake; commit;
                python main.py; terraform plan; bake review (the pull request's body)
  main again    merge the rebake; plan --check says 0; terraform plan and apply

Each step prints its job, its command and its exit code; an unexpected exit code stops the
rehearsal with exit 1. The reviews and plans are left in WORKDIR/out.

    python scripts/rehearse_pipeline.py [--workdir DIR]

Needs the sandbox up (`python -m bake sandbox up`, as root) and terraform on PATH.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "constructs")]

from bake.sandbox import Sandbox, sample_config  # noqa: E402 - the sandbox only stands in for AWS and the registry
from nodepools.tfenv import terraform_env  # noqa: E402

STACK = "cdktf.out/stacks/nodepools"
PY = sys.executable


class Failed(Exception):
    pass


class Rehearsal:
    def __init__(self, workdir: Path, sandbox: Sandbox):
        self.repo, self.out = workdir / "repo", workdir / "out"
        self.sandbox = sandbox
        self.env = terraform_env({**os.environ, **sandbox.env()})
        self.steps = 0

    def run(self, job: str, cmd: list[str], expect: int = 0, stdout: Path | None = None) -> str:
        """One pipeline step, as the workflow runs it, in the repository."""
        self.steps += 1
        shown = " ".join(shlex.quote(c) for c in cmd).replace(PY, "python") + (f" > {stdout.name}" if stdout else "")
        started = time.monotonic()
        p = subprocess.run(cmd, cwd=self.repo, env=self.env, text=True, capture_output=True, timeout=900)
        print(f"[{job}] {shown} -> exit {p.returncode} ({time.monotonic() - started:.1f}s)", flush=True)
        if p.returncode != expect:
            raise Failed(f"[{job}] {shown}: exit {p.returncode}, expected {expect}\n"
                         f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")
        if stdout:
            stdout.write_text(p.stdout, encoding="utf-8")
        elif cmd[:4] == [PY, "-m", "bake", "plan"]:
            print(textwrap.indent(p.stdout.rstrip(), "    "), flush=True)  # what the job's log shows
        return p.stdout

    def git(self, job: str, *args: str) -> str:
        return self.run(job, ["git", *args])

    def bake(self, job: str, *args: str, expect: int = 0) -> str:
        return self.run(job, [PY, "-m", "bake", *args], expect=expect)

    def plan_and_review(self, job: str, name: str, base: str) -> None:
        """The review job: synthesize, terraform plan, the base branch's lock, bake review."""
        self.run(job, [PY, str(ROOT / "main.py")])
        self.run(job, ["terraform", f"-chdir={STACK}", "init", "-input=false", "-no-color"])
        self.run(job, ["terraform", f"-chdir={STACK}", "plan", "-input=false", "-no-color", "-out=tfplan"])
        self.run(job, ["terraform", f"-chdir={STACK}", "show", "-json", "tfplan"], stdout=self.out / f"{name}-plan.json")
        # `git show BASE:amis.lock.json > base.lock.json || true`: a missing lock leaves it empty
        shown = subprocess.run(["git", "show", f"{base}:amis.lock.json"], cwd=self.repo, capture_output=True, text=True)
        (self.out / f"{name}-base.lock.json").write_text(shown.stdout if shown.returncode == 0 else "")
        self.bake(job, "review", "--plan", str(self.out / f"{name}-plan.json"),
                  "--base-lock", str(self.out / f"{name}-base.lock.json"), "--lock", "amis.lock.json",
                  "--output", str(self.out / f"{name}-review.md"))

    def apply(self, job: str) -> None:
        self.run(job, [PY, str(ROOT / "main.py")])
        self.run(job, ["terraform", f"-chdir={STACK}", "init", "-input=false", "-no-color"])
        self.run(job, ["terraform", f"-chdir={STACK}", "plan", "-input=false", "-no-color", "-out=tfplan"])
        self.run(job, ["terraform", f"-chdir={STACK}", "apply", "-input=false", "-no-color", "tfplan"])

    def commit(self, job: str, message: str) -> None:
        self.git(job, "add", "amis.lock.json")
        self.git(job, "-c", "user.name=github-actions[bot]", "-c", "user.email=bot@example.invalid",
                 "commit", "-q", "-m", message)

    def merge(self, branch: str) -> None:
        self.git("merge", "switch", "-q", "main")
        self.git("merge", "-c", "user.name=reviewer", "-c", "user.email=reviewer@example.invalid",
                 "merge", "-q", "--no-ff", branch, "-m", f"Merge pull request from {branch}")

    def rehearse(self) -> dict[str, str]:
        info = self.sandbox.info
        pool = f"rehearsal{secrets.token_hex(3)}"
        repository = f"env/{pool}"
        self.sandbox.push_image(repository, "v1", size_mb=1)
        image = f"{info.registry}/{repository}:v1"
        self.repo.mkdir(parents=True)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.repo / ".gitignore").write_text("cdktf.out/\n.amis.lock.json.lock\n.amis.lock.json.*.bake\n")
        self.git("setup", "init", "-q", "-b", "main")
        self.git("setup", "add", ".gitignore")
        self.git("setup", "-c", "user.name=dev", "-c", "user.email=dev@example.invalid", "commit", "-q", "-m", "start")

        print(f"== pull request: add pool {pool} ({image})", flush=True)
        self.git("pull request", "switch", "-q", "-c", f"add-{pool}")
        config = sample_config.render_pool(self.sandbox.layout, pool, [image], self.out / "terraform.tfstate")
        (self.repo / "bake.toml").write_text(config)
        self.git("pull request", "add", "bake.toml")
        self.git("pull request", "-c", "user.name=dev", "-c", "user.email=dev@example.invalid",
                 "commit", "-q", "-m", f"bake.toml: pool {pool}")
        self.bake("pull request / bake", "build")
        self.commit("pull request / bake", "amis.lock.json: AMIs baked for this pull request")
        self.bake("pull request / review", "plan")
        self.plan_and_review("pull request / review", "pr", "main")

        print("== main: apply only what was reviewed", flush=True)
        self.merge(f"add-{pool}")
        self.bake("main / check", "plan", "--check", expect=0)
        self.apply("main / apply")

        print(f"== nightly: the tag {image} moves", flush=True)
        self.sandbox.push_image(repository, "v1", size_mb=1)
        self.bake("nightly / check", "plan", "--check", expect=4)
        self.git("nightly / rebake", "switch", "-q", "-C", "bake/rebake")
        self.bake("nightly / rebake", "build")
        self.commit("nightly / rebake", "amis.lock.json: nightly rebake (image tags moved or a new base AMI)")
        self.plan_and_review("nightly / review", "rebake", "main")

        print("== main: the rebake pull request is merged", flush=True)
        self.merge("bake/rebake")
        self.bake("main / check", "plan", "--check", expect=0)
        self.apply("main / apply")
        return {"pool": pool, "image": image}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where the git repository and the reviews go (default: a new temporary folder)")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bake-rehearsal-"))
    sandbox = Sandbox()
    if not sandbox.is_up():
        print("rehearsal: the sandbox is not up: run `python -m bake sandbox up` first (as root)", file=sys.stderr)
        return 2
    rehearsal = Rehearsal(workdir, sandbox)
    started = time.monotonic()
    try:
        result = rehearsal.rehearse()
    except Failed as e:
        print(f"rehearsal: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"rehearsal: passed, {rehearsal.steps} steps in {time.monotonic() - started:.0f}s; pool {result['pool']}; "
          f"repository {rehearsal.repo}; reviews in {rehearsal.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
