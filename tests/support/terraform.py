"""Terraform for the rollout, adopt and end-to-end tests: throw-away projects, synth and terraform runners, plan reading.

Terraform runs for real, with providers from the local mirror (terraform/cli.tfrc) and AWS
pointed at a moto server by AWS_ENDPOINT_URL only; the synthesized stack has no test settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bake.model.lock import ImageDigest, LockEntry, LockFile

from nodepools import tfenv
# Relative: this module is `support.terraform` under pytest and `tests.support.terraform` when a
# script runs as `python -m tests...` (tests/iam/minimality.py).
from .ci import in_ci
from .cli import ROOT

PYTHON = sys.executable
STACK_DIR = Path("cdktf.out") / "stacks" / "nodepools"

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")


@dataclass
class Moto:
    url: str
    env: dict[str, str]

    def client(self, service: str):  # noqa: ANN201
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = tfenv.terraform_env()
    # Never reach a real account from a test, whatever the machine has configured.
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(k, None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "constructs")])
    env.update(extra or {})
    return env


@dataclass
class Project:
    """A throw-away project folder: bake.toml, amis.lock.json, cdktf.out, terraform state."""

    dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.dir / "bake.toml"

    @property
    def lock(self) -> Path:
        return self.dir / "amis.lock.json"

    @property
    def stack(self) -> Path:
        return self.dir / STACK_DIR

    def write_config(self, text: str) -> None:
        self.config.write_text(textwrap.dedent(text), encoding="utf-8")

    def run(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(list(cmd), cwd=self.dir, env=base_env(self.env), text=True,
                           capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}")
        return p

    def synth(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``python main.py`` in the project folder: the same thing cdktf.json's app runs."""
        return self.run(PYTHON, str(ROOT / "main.py"), check=check)

    def synthesized(self) -> dict:
        return json.loads((self.stack / "cdk.tf.json").read_text())

    def tf(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run("terraform", f"-chdir={self.stack}", *args, check=check, timeout=timeout)

    def init(self) -> None:
        self.tf("init", "-input=false", "-no-color")

    def plan_json(self) -> dict:
        self.tf("plan", "-input=false", "-no-color", "-out=tfplan")
        return json.loads(self.tf("show", "-json", "tfplan").stdout)

    def apply_plan(self) -> None:
        self.tf("apply", "-input=false", "-no-color", "-auto-approve", "tfplan")

    def roll_out(self, *, first: bool = False) -> dict:
        """What a pipeline does once the lock changed: synthesize, init (the ``first`` time), plan
        and apply that plan. Returns the plan applied (``synthesized()`` still reads the stack)."""
        self.synth()
        if first:
            self.init()
        plan = self.plan_json()
        self.apply_plan()
        return plan

    def bake(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(PYTHON, "-m", "bake", *args, "--config", str(self.config), check=check)


def changes(plan: dict) -> dict[str, dict]:
    """address -> change, for every resource in a `terraform show -json` plan."""
    return {rc["address"]: rc["change"] for rc in plan.get("resource_changes", [])}


def steady(plan: dict) -> dict[str, list[str]]:
    """address -> actions of every resource that would change; a plan that names no resource at
    all is refused: a steady plan still lists each of the stack's resources as a no-op, so an
    empty one planned nothing (a wrong directory, an empty stack), not a deployed stack."""
    acts = {a: c["actions"] for a, c in changes(plan).items()}
    assert acts, "the plan names no resource at all: it is no plan of the deployed stack"
    return {a: act for a, act in acts.items() if act != ["no-op"]}


def needs_terraform() -> pytest.MarkDecorator:
    """Skip without terraform on a developer's machine; in CI (CI=true) run and fail loudly."""
    missing = shutil.which("terraform") is None and not in_ci()
    return pytest.mark.skipif(missing, reason="terraform is not installed")


IMAGE = "docker.io/library/nginx:1.27"
DIGEST = "sha256:" + "a" * 64


def bake_ami(moto: Moto, name: str) -> str:
    """Stand-in for a bake: an instance from moto's EKS AMI, imaged, terminated."""
    ec2 = moto.client("ec2")
    inst = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="t3.medium")
    iid = inst["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name=name)["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return ami


def record(lock: Path, pool: str, ami: str, fingerprint: str, built_at: str) -> None:
    entry = LockEntry(ami_id=ami, region="us-east-1", fingerprint=fingerprint, base_ami="ami-ekslinux",
                      images=[ImageDigest(ref=IMAGE, digest=DIGEST)], built_at=built_at)
    LockFile(lock).update(pool, lambda p: p.promoted(entry))


def asg_image(moto, name: str) -> str:  # noqa: ANN001 - a Moto or the Sandbox: anything with .client
    """The AMI the ASG launches now: through its template version or its launch configuration."""
    asg = moto.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    if "LaunchTemplate" in asg:
        spec = asg["LaunchTemplate"]
        v = moto.client("ec2").describe_launch_template_versions(
            LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec["Version"]])["LaunchTemplateVersions"][0]
        return v["LaunchTemplateData"]["ImageId"]
    lc = moto.client("autoscaling").describe_launch_configurations(
        LaunchConfigurationNames=[asg["LaunchConfigurationName"]])["LaunchConfigurations"][0]
    return lc["ImageId"]
