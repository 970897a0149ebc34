#!/usr/bin/env python3
"""Rehearse the example pipeline (examples/github-actions/*.yml) against the local sandbox,
without GitHub: the workflows' own jobs and steps, read from the YAML files and run by
scripts/workflow_runner.py, against a throw-away ``origin`` repository.

  pull request  a developer pushes a branch that adds a pool to bake.toml; pull-request.yml runs
                (bake: build, commit and push the lock; review: plan, synthesize, terraform
                plan, the review against main's lock)
  main          the developer merges it; main.yml runs (check: plan --check; apply)
  nightly       the image's tag moves; scheduled.yml runs (check says stale, rebake pushes
                bake/rebake, review opens the pull request through a `gh` test double); its
                lifecycle job is not run: sweep and prune act on the whole (shared) account
  main again    the developer merges bake/rebake; main.yml runs again

Each step prints its workflow, job, name, exit code and log; a job that fails stops the
rehearsal with exit 1. The job folders (checkouts, RUNNER_TEMP: plans and reviews) stay in
WORKDIR/jobs.

    python scripts/rehearse_pipeline.py [--workdir DIR] [--workflows DIR]

Needs the sandbox up (`python -m bake sandbox up`, as root) and terraform on PATH.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "constructs"), str(ROOT / "scripts")]

from bake_sandbox import Sandbox, sample_config  # noqa: E402 - the sandbox only stands in for AWS and the registry
from nodepools.tfenv import terraform_env  # noqa: E402
from workflow_runner import Runner  # noqa: E402

WORKFLOWS = ROOT / "examples" / "github-actions"
NOT_RUN = {"lifecycle": "sweep --yes and prune --yes act on the whole account, here the shared sandbox"}
DEV = ["-c", "user.name=dev", "-c", "user.email=dev@example.invalid"]


class Failed(Exception):
    pass


class Rehearsal:
    def __init__(self, workdir: Path, sandbox: Sandbox, workflows: Path = WORKFLOWS):
        self.origin, self.dev, self.out = workdir / "origin.git", workdir / "dev", workdir / "jobs"
        self.sandbox = sandbox
        self.workflows = workflows
        env = terraform_env({**os.environ, **sandbox.env()})
        self.runner = Runner(self.origin, self.out, env, log=lambda line: print(line, flush=True))
        self.jobs: list[tuple[str, str, str, dict[str, str]]] = []  # (workflow, job, result, outputs)

    def git(self, *args: str) -> str:
        """What the developer does by hand, in their own clone."""
        p = subprocess.run(["git", *args], cwd=self.dev, capture_output=True, text=True)
        print(f"[developer] git {' '.join(args)} -> exit {p.returncode}", flush=True)
        if p.returncode:
            raise Failed(f"git {' '.join(args)}: {p.stderr}")
        return p.stdout

    def workflow(self, name: str, event_name: str, **github: object) -> dict[str, str]:
        """``github``: the run's github context (``event`` among it)."""
        ran = self.runner.run_workflow(self.workflows / name, event_name, dict(github), skip=NOT_RUN)
        for job in ran.values():
            self.jobs.append((name, job.name, job.result, job.outputs))
        failed = [j.name for j in ran.values() if j.result == "failure"]
        if failed:
            raise Failed(f"{name}: job(s) {', '.join(failed)} failed (their log is above)")
        return {j.name: j.result for j in ran.values()}

    def merge(self, branch: str) -> None:
        self.git("fetch", "-q", "origin")
        self.git("switch", "-q", "main")
        self.git("merge", "-q", "--ff-only", "origin/main")
        self.git(*DEV, "merge", "-q", "--no-ff", f"origin/{branch}", "-m", f"Merge pull request from {branch}")
        self.git("push", "-q", "origin", "main")

    def rehearse(self) -> dict[str, str]:
        info = self.sandbox.info
        pool = f"rehearsal{secrets.token_hex(3)}"
        repository = f"env/{pool}"
        self.sandbox.push_image(repository, "v1", size_mb=1)
        image = f"{info.registry}/{repository}:v1"
        self.out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)], check=True)
        self.dev.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(self.origin))
        # The project's own files a user's repository holds: the stack's app and the workflows.
        for f in ("main.py", "cdktf.json"):
            shutil.copy(ROOT / f, self.dev / f)
        shutil.copytree(self.workflows, self.dev / ".github" / "workflows")
        (self.dev / ".gitignore").write_text("cdktf.out/\n.bake-runs/\n.amis.lock.json.lock\n.amis.lock.json.*.bake\n")
        self.git("add", ".")
        self.git(*DEV, "commit", "-q", "-m", "start")
        self.git("push", "-q", "-u", "origin", "main")

        print(f"== pull request: add pool {pool} ({image})", flush=True)
        self.git("switch", "-q", "-c", f"add-{pool}")
        config = sample_config.render_pool(self.sandbox.layout, pool, [image], self.out / "terraform.tfstate")
        (self.dev / "bake.toml").write_text(config)
        self.git("add", "bake.toml")
        self.git(*DEV, "commit", "-q", "-m", f"bake.toml: pool {pool}")
        self.git("push", "-q", "origin", f"add-{pool}")
        head = self.git("rev-parse", "HEAD").strip()
        self.workflow("pull-request.yml", "pull_request", head_ref=f"add-{pool}", base_ref="main",
                      ref_name=f"add-{pool}", event={"pull_request": {
                          "number": 1, "head": {"sha": head, "repo": {"full_name": "example/node-amis"}}}})

        print("== main: apply only what was reviewed", flush=True)
        self.merge(f"add-{pool}")
        self.workflow("main.yml", "push", ref_name="main")

        print(f"== nightly: the tag {image} moves", flush=True)
        self.sandbox.push_image(repository, "v1", size_mb=1)
        self.workflow("scheduled.yml", "schedule", ref_name="main")

        print("== main: the rebake pull request is merged", flush=True)
        self.merge("bake/rebake")
        self.workflow("main.yml", "push", ref_name="main")
        return {"pool": pool, "image": image}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where the repositories and the jobs' folders go (default: a new temporary folder)")
    ap.add_argument("--workflows", type=Path, default=WORKFLOWS, help="the workflow files (default: %(default)s)")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bake-rehearsal-"))
    sandbox = Sandbox()
    if not sandbox.is_up():
        print("rehearsal: the sandbox is not up: run `python -m bake sandbox up` first (as root)", file=sys.stderr)
        return 2
    rehearsal = Rehearsal(workdir, sandbox, args.workflows)
    started = time.monotonic()
    try:
        result = rehearsal.rehearse()
    except Failed as e:
        print(f"rehearsal: FAILED: {e}", file=sys.stderr)
        return 1
    steps = sum(1 for s in rehearsal.runner.steps if s.kind == "run")
    print(f"rehearsal: passed, {steps} steps in {time.monotonic() - started:.0f}s; pool {result['pool']}; "
          f"origin {rehearsal.origin}; jobs in {rehearsal.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
