"""scripts/workflow_runner.py, the rehearsal's stand-in for a GitHub runner, on small workflows:
run steps as written, outputs, needs, if:, working-directory, checkout from origin, gh double."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# scripts/ is no package: the module is loaded from its file, as rehearse_pipeline.py's sibling.
_spec = importlib.util.spec_from_file_location(
    "workflow_runner", Path(__file__).resolve().parents[2] / "scripts" / "workflow_runner.py")
workflow_runner = importlib.util.module_from_spec(_spec)
sys.modules["workflow_runner"] = workflow_runner
_spec.loader.exec_module(workflow_runner)
Runner, WorkflowError, evaluate = workflow_runner.Runner, workflow_runner.WorkflowError, workflow_runner.evaluate

WORKFLOW = """
name: t
on: push
env:
  GREETING: hello
jobs:
  first:
    runs-on: ubuntu-latest
    outputs:
      made: ${{ steps.make.outputs.made }}
    steps:
      - uses: actions/checkout@0000000000000000000000000000000000000000 # v0
      - name: Install
        run: python -m pip install -e .
      - name: Make
        id: make
        run: |
          echo "$GREETING from $(cat file.txt)" > out.txt
          echo "made=yes" >> "$GITHUB_OUTPUT"
      - name: In a folder
        working-directory: sub
        run: pwd > "$RUNNER_TEMP/where"
  second:
    needs: first
    if: needs.first.outputs.made == 'yes'
    runs-on: ubuntu-latest
    steps:
      - name: Fail
        run: exit 3
      - name: Never
        run: echo never
  third:
    needs: second
    runs-on: ubuntu-latest
    steps:
      - run: echo unreachable
  open:
    needs: first
    if: ${{ !cancelled() && needs.first.result == 'success' }}
    runs-on: ubuntu-latest
    steps:
      - name: PR
        run: echo body > b.md && gh pr create --head x --body-file b.md
"""


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    work = tmp_path / "src"
    (work / "sub").mkdir(parents=True)
    (work / "file.txt").write_text("origin\n")
    (work / "sub" / "keep").write_text("")
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=work, check=True)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def test_jobs_run_their_own_steps_in_order(tmp_path, origin):
    wf = tmp_path / "t.yml"
    wf.write_text(WORKFLOW)
    lines: list[str] = []
    runner = Runner(origin, tmp_path / "jobs", {"PATH": "/usr/bin:/bin"}, log=lines.append)
    ran = runner.run_workflow(wf, "push", {"ref_name": "main"})
    assert {k: v.result for k, v in ran.items()} == {"first": "success", "second": "failure", "third": "skipped",
                                                    "open": "success"}
    assert ran["first"].outputs == {"made": "yes"}
    [first_dir] = (tmp_path / "jobs").glob("*-t-first")
    assert (first_dir / "checkout" / "out.txt").read_text() == "hello from origin\n"
    assert (first_dir / "runner-temp" / "where").read_text().strip().endswith("checkout/sub")
    assert [(s.job, s.name, s.kind, s.exit) for s in runner.steps if s.kind == "run"] == [
        ("first", "Make", "run", 0), ("first", "In a folder", "run", 0), ("second", "Fail", "run", 3),
        ("open", "PR", "run", 0)]
    assert any("Install: stands in" in line for line in lines)
    assert "pr create --head x --body-file b.md" in (tmp_path / "jobs" / "gh.log").read_text()
    assert (tmp_path / "jobs" / "gh-body.md").read_text() == "body\n"


def test_expressions():
    ctx = {"github": {"head_ref": "b", "event": {"pull_request": {"head": {"sha": "abc"}}}},
           "needs": {"bake": {"result": "skipped", "outputs": {"head": ""}}}}
    assert evaluate("needs.bake.outputs.head || github.event.pull_request.head.sha", ctx) == "abc"
    assert evaluate("!cancelled() && (needs.bake.result == 'success' || needs.bake.result == 'skipped')", ctx)
    assert evaluate("github.head_ref != 'b'", ctx) is False
    with pytest.raises(WorkflowError):
        evaluate("hashFiles('x')", ctx)
