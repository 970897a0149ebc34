"""Run the jobs of a GitHub Actions workflow file on this machine, the way a runner would, as far
as the pipeline rehearsal needs (scripts/rehearse_pipeline.py).

Every ``run:`` step is the workflow's own script, run with ``bash -eo pipefail`` in the job's
checkout (``working-directory`` honoured) with the workflow's, the job's and the step's ``env``,
``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY`` and ``RUNNER_TEMP``. ``${{ }}`` expressions and
``if:`` conditions are evaluated over the contexts the example workflows use (github, env,
needs, steps, runner, vars). What stands in for GitHub:

- ``actions/checkout``: a fresh clone of the rehearsal's ``origin`` repository, at ``ref``;
- the other actions (setup-python, setup-terraform, configure-aws-credentials, github-script):
  nothing; this interpreter, terraform on PATH and the sandbox's credentials are the set-up;
- ``pip install`` steps: nothing; this interpreter already has the project installed;
- ``gh``: a test double on PATH that records its arguments and the body file it is given.

Nothing here knows which commands the jobs run: change a workflow and the rehearsal runs the
change.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\))|(?P<call>[a-z]+\(\))"
                   r"|(?P<name>[A-Za-z_][\w.-]*)|(?P<num>\d+))")


class WorkflowError(Exception):
    pass


def evaluate(expression: str, contexts: dict[str, Any]) -> Any:
    """A GitHub expression (without ``${{ }}``) over ``contexts``: strings, context paths,
    ``== != && || !``, parentheses and ``cancelled()`` (never: a rehearsal is not cancelled)."""
    out, pos, text = [], 0, expression.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WorkflowError(f"cannot read the expression {expression!r} at {text[pos:]!r}")
        pos = m.end()
        if m["str"]:
            out.append(repr(m["str"][1:-1].replace("''", "'")))
        elif m["op"]:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(m["op"], f" {m['op']} "))
        elif m["call"]:
            if m["call"] not in ("cancelled()", "always()", "success()", "failure()"):
                raise WorkflowError(f"unsupported function {m['call']} in {expression!r}")
            out.append({"cancelled()": "False", "always()": "True", "success()": "True", "failure()": "False"}[m["call"]])
        elif m["name"] in ("true", "false", "null"):
            out.append({"true": "True", "false": "False", "null": "None"}[m["name"]])
        elif m["name"]:
            if text[pos:].lstrip().startswith("("):
                raise WorkflowError(f"unsupported function {m['name']}() in {expression!r}")
            out.append(f"_v({m['name']!r})")
        else:
            out.append(m["num"])

    def lookup(path: str) -> Any:
        value: Any = contexts
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value

    return eval("".join(out), {"__builtins__": {}, "_v": lookup})  # noqa: S307 - a closed grammar, above


def substitute(text: str, contexts: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: str(evaluate(m.group(1), contexts)), text)


def condition(value: Any, contexts: dict[str, Any]) -> bool:
    if value is None:
        return True
    text = str(value).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return bool(evaluate(text, contexts))


@dataclass
class StepRun:
    workflow: str
    job: str
    name: str
    kind: str  # "run", "checkout", "stands in"
    command: str = ""
    exit: int = 0
    seconds: float = 0.0


@dataclass
class JobRun:
    name: str
    result: str  # success, failure, skipped
    outputs: dict[str, str] = field(default_factory=dict)


class Runner:
    """Runs workflows against one ``origin`` repository, in ``work`` (a folder per job)."""

    def __init__(self, origin: Path, work: Path, env: dict[str, str], log: Any = print):
        self.origin, self.work, self.env, self.log = origin, work, env, log
        self.steps: list[StepRun] = []
        self.count = 0
        self.stub_dir = work / "stubs"
        self.gh_log = work / "gh.log"
        self._gh_stub()

    def _gh_stub(self) -> None:
        self.stub_dir.mkdir(parents=True, exist_ok=True)
        gh = self.stub_dir / "gh"
        # TEST DOUBLE for the GitHub CLI: no pull request is open; `pr create/edit --body-file F`
        # records its arguments and keeps F's text beside the log.
        gh.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            printf '%s\\n' "$*" >> {shlex.quote(str(self.gh_log))}
            prev=""
            for a in "$@"; do
              if [ "$prev" = "--body-file" ]; then cp "$a" {shlex.quote(str(self.work / "gh-body.md"))}; fi
              prev=$a
            done
            exit 0
            """))
        gh.chmod(0o755)

    def run_workflow(self, path: Path, event: str, github: dict[str, Any], skip: dict[str, str] | None = None
                     ) -> dict[str, JobRun]:
        """Every job of ``path`` whose ``if:`` holds, in the order of ``needs`` (file order
        otherwise). ``skip``: jobs not run here, with the reason printed."""
        wf = yaml.safe_load(path.read_text())
        name = path.name
        wf_env = {k: str(v) for k, v in (wf.get("env") or {}).items()}
        jobs: dict[str, Any] = wf["jobs"]
        done: dict[str, JobRun] = {}
        github = {"event_name": event, "repository": "example/node-amis", "token": "rehearsal-token", **github}
        while len(done) < len(jobs):
            ready = [j for j in jobs if j not in done and all(n in done for n in _needs(jobs[j]))]
            if not ready:
                raise WorkflowError(f"{name}: the jobs' needs form a cycle")
            job_id = ready[0]
            job = jobs[job_id]
            needs = {n: {"result": done[n].result, "outputs": done[n].outputs} for n in _needs(job)}
            contexts = {"github": github, "env": wf_env, "needs": needs, "vars": {}, "runner": {}, "steps": {}}
            if skip and job_id in skip:
                self.log(f"[{name} {job_id}] not run here: {skip[job_id]}")
                done[job_id] = JobRun(job_id, "skipped")
            elif any(needs[n]["result"] == "failure" for n in needs) and "cancelled()" not in str(job.get("if", "")):
                self.log(f"[{name} {job_id}] skipped: a job it needs failed")
                done[job_id] = JobRun(job_id, "skipped")
            elif not condition(job.get("if"), contexts):
                self.log(f"[{name} {job_id}] skipped: if: {job.get('if')}")
                done[job_id] = JobRun(job_id, "skipped")
            else:
                done[job_id] = self._run_job(name, job_id, job, wf_env, contexts)
        return done

    def _run_job(self, workflow: str, job_id: str, job: dict[str, Any], wf_env: dict[str, str],
                 contexts: dict[str, Any]) -> JobRun:
        folder = self.work / f"{self.count:02d}-{workflow.removesuffix('.yml')}-{job_id}"
        self.count += 1
        checkout, temp = folder / "checkout", folder / "runner-temp"
        temp.mkdir(parents=True)
        checkout.mkdir()  # the job's workspace: empty until a checkout clones into it
        env = {**wf_env, **{k: substitute(str(v), contexts) for k, v in (job.get("env") or {}).items()}}
        contexts = {**contexts, "env": env, "runner": {"temp": str(temp)}}
        steps_ctx: dict[str, Any] = contexts["steps"]
        result = "success"
        for step in job.get("steps", []):
            title = step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0]
            if result == "failure" and "always()" not in str(step.get("if", "")):
                continue
            if not condition(step.get("if"), contexts):
                self.log(f"[{workflow} {job_id}] {title}: skipped (if: {step.get('if')})")
                continue
            uses = step.get("uses", "")
            if uses.startswith("actions/checkout@"):
                ref = substitute(str((step.get("with") or {}).get("ref") or ""), contexts) or contexts["github"]["ref_name"]
                self._checkout(checkout, ref)
                self.steps.append(StepRun(workflow, job_id, title, "checkout", ref))
                self.log(f"[{workflow} {job_id}] {title}: a fresh clone of origin at {ref}")
                continue
            if uses or re.match(r"python -m pip install\b", step.get("run", "").strip()):
                self.steps.append(StepRun(workflow, job_id, title, "stands in", uses or step["run"].strip()))
                self.log(f"[{workflow} {job_id}] {title}: stands in ({uses or 'this interpreter is the install'})")
                continue
            code, outputs = self._run_step(workflow, job_id, title, step, checkout, temp, env, contexts)
            if step.get("id"):
                steps_ctx[step["id"]] = {"outputs": outputs}
            if code != 0:
                result = "failure"
        outputs = {k: substitute(str(v), contexts) for k, v in (job.get("outputs") or {}).items()}
        self.log(f"[{workflow} {job_id}] job {result}" + (f"; outputs {outputs}" if outputs else ""))
        return JobRun(job_id, result, outputs)

    def _checkout(self, checkout: Path, ref: str) -> None:
        subprocess.run(["git", "clone", "-q", str(self.origin), str(checkout)], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(checkout), "checkout", "-q", ref], check=True, capture_output=True)

    def _run_step(self, workflow: str, job_id: str, title: str, step: dict[str, Any], checkout: Path, temp: Path,
                  env: dict[str, str], contexts: dict[str, Any]) -> tuple[int, dict[str, str]]:
        script = step["run"]
        output_file, summary = temp / f"output-{self.count}-{len(self.steps)}", temp / "summary.md"
        output_file.touch()
        step_env = {k: substitute(str(v), contexts) for k, v in (step.get("env") or {}).items()}
        cwd = checkout / substitute(str(step.get("working-directory") or "."), contexts)
        full = {**self.env, **env, **step_env, "GITHUB_OUTPUT": str(output_file), "GITHUB_STEP_SUMMARY": str(summary),
                "RUNNER_TEMP": str(temp), "CI": "true",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(self.stub_dir), self.env.get("PATH", "")])}
        started = time.monotonic()
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=full,
                           text=True, capture_output=True, timeout=900)
        took = time.monotonic() - started
        self.steps.append(StepRun(workflow, job_id, title, "run", script.strip(), p.returncode, took))
        self.log(f"[{workflow} {job_id}] {title} -> exit {p.returncode} ({took:.1f}s)")
        for line in script.strip().splitlines():
            self.log(f"    $ {line}")
        for line in (p.stdout + p.stderr).rstrip().splitlines()[-60:]:
            self.log(f"    | {line}")
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        return p.returncode, outputs


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)

