"""checkov over the synthesized stacks: the one list of the checks this project skips, and why.

checkov reads skip comments only in HCL; in a synthesized ``cdk.tf.json`` there is no place for
one (its terraform_json runner collects none), so the supported way is ``--skip-check`` with check
ids, and this module is where they are kept, each with its reason. ``scan`` runs checkov once over
any number of stacks (offline: ``--skip-download``, its bundled checks only) without the flag and
sorts the failures itself, so a skip that no longer matches any failure shows up as stale instead
of hiding quietly. ``command`` is the same scan with ``--skip-check`` for a pipeline to run.

What checkov 3.3.30 cannot read: the top-level ``import`` list Terraform's import blocks become in
JSON (an adopted Auto Scaling group's stack has one), which its terraform_json parser fails on,
dropping the whole file. ``readable`` writes a copy without it: an import block names which live
group to take over, no setting of any resource, so nothing checkov checks is lost with it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SKIPS = {
    "CKV2_AWS_34": "SSM parameter not encrypted: the pool's [distribute] ssm_parameter holds an AMI id with "
                   "data_type aws:ec2:image, which only a String parameter can have (SecureString cannot carry "
                   "that data type, and launch templates resolve it with resolve:ssm:); an AMI id is no secret",
    "CKV_AWS_315": 'Auto Scaling group without a launch template: launch = "configuration" is the legacy mode '
                   "for groups not yet migrated (docs/rollout.md, launch modes); the default and recommended mode is "
                   '"template", and post-2022 instance types are refused there (docs/aws-rules.md)',
}

# Top-level keys of a synthesized stack that checkov cannot parse, and why dropping them is safe.
UNREADABLE = {
    "import": "Terraform import blocks (an adopted group's): checkov 3.3.30's terraform_json parser fails on "
              "the top-level list; they name what to import and set nothing checkov checks",
}


def readable(stack: Path, out: Path) -> list[str]:
    """Write ``stack`` without the keys in UNREADABLE to ``out``; the keys dropped."""
    doc = json.loads(stack.read_text())
    dropped = sorted(k for k in UNREADABLE if k in doc)
    for k in dropped:
        del doc[k]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    return dropped


def command(checkov: str, stacks: list[Path], *, skip: bool = True) -> list[str]:
    argv = [checkov, "--framework", "terraform_json", "--skip-download", "--quiet", "-o", "json"]
    for s in stacks:
        argv += ["-f", str(s)]
    if skip:
        argv += ["--skip-check", ",".join(sorted(SKIPS))]
    return argv


PARSE_FAILURE = "Failed to parse template:"


@dataclass(frozen=True)
class Finding:
    check_id: str
    file: str
    resource: str


@dataclass(frozen=True)
class Scan:
    failed: list[Finding]  # not in SKIPS: to fix
    skipped: list[Finding]  # in SKIPS (the reason is SKIPS[check_id])
    stale_skips: list[str]  # SKIPS that matched nothing
    parsing_errors: list[str]  # the files checkov could not parse
    passed: int


def scan(checkov: str, stacks: list[Path], cwd: Path) -> Scan:
    """One checkov run over ``stacks`` (paths relative to ``cwd`` keep the report readable)."""
    p = subprocess.run(command(checkov, stacks, skip=False), cwd=cwd, capture_output=True, text=True, timeout=600)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        raise RuntimeError(f"checkov exited {p.returncode}: {p.stderr[-2000:]}")
    reports = json.loads(p.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    findings, passed, unparsed = [], 0, 0
    for r in reports:
        findings += [Finding(f["check_id"], f["file_path"], f["resource"]) for f in r.get("results", {}).get("failed_checks", [])]
        passed += r.get("summary", {}).get("passed", 0)
        unparsed += r.get("summary", {}).get("parsing_errors", 0)
    # The JSON report counts the files it could not parse; its log names them.
    errors = [line.split(PARSE_FAILURE, 1)[1].strip() for line in p.stderr.splitlines() if PARSE_FAILURE in line]
    if len(errors) != unparsed:
        raise RuntimeError(f"checkov counted {unparsed} unparsable file(s) but named {errors}: {p.stderr[-2000:]}")
    hit = {f.check_id for f in findings}
    return Scan(failed=[f for f in findings if f.check_id not in SKIPS],
                skipped=[f for f in findings if f.check_id in SKIPS],
                stale_skips=sorted(set(SKIPS) - hit), parsing_errors=errors, passed=passed)
