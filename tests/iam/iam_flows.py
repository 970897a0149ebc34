"""Each use of the tool, run as one IAM user against the IAM-enforcing moto: the paths the
least-privilege tests (and ``tests/iam/minimality.py``) run with exactly the printed policy.

A project is the sandbox's sample config (pool ``cpu``: launch template, containerd, an ECR
image; ``legacy``: launch configuration, docker) plus a pool ``adopted`` that ``bake adopt``
writes for a group made the old way, its state and lock in a folder of its own. Pool ``cpu``
also uses every feature with AWS calls of its own (``DISTRIBUTE``): a copy in a second region
encrypted with that region's key, launch and create-volume permission for an account, the AMI
id published in SSM in both regions, fast snapshot restore on its snapshot, and ECR's regional
names for its ECR image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from bake import tags
from bake_sandbox import sample_config
from bake_sandbox.iam_moto import Credentials, IamMoto
from tests.support.cli import ROOT  # as a package: `python -m tests.iam.minimality` runs this too
from tests.support.terraform import Project, base_env

ROLES = ("plan", "bake", "deploy", "lifecycle")

COPY_REGION = "us-west-2"
COPY_KEY = f"arn:aws:kms:{COPY_REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SHARED_WITH = "111122223333"
PARAMETER = "/bake/cpu/ami"
FSR_ZONE = "us-east-1a"
# Pool cpu's keys beyond the sample config's: the features whose AWS calls the policies must cover.
DISTRIBUTE = {
    "distribute": {"regions": [COPY_REGION], "kms_key_ids": {COPY_REGION: COPY_KEY}, "accounts": [SHARED_WITH],
                   "ssm_parameter": PARAMETER},
    "fast_snapshot_restore": {"availability_zones": [FSR_ZONE]},
    "ecr_regional_aliases": True,
}


@dataclass
class Step:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        return f"{' '.join(self.argv)} exited {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


@dataclass
class IamProject(Project):
    """A rollout test project whose AWS is an IAM-enforcing moto, run as one user or another."""

    moto: IamMoto | None = None
    sandbox_env: dict[str, str] = field(default_factory=dict)

    def user_env(self, creds: Credentials) -> dict[str, str]:
        return creds.env(self.moto.endpoint, base_env(self.sandbox_env))

    def as_user(self, creds: Credentials, *argv: str, timeout: float = 600) -> Step:
        p = subprocess.run(list(argv), cwd=self.dir, env=self.user_env(creds), text=True, capture_output=True, timeout=timeout)
        return Step(list(argv), p.returncode, p.stdout, p.stderr)

    def bake(self, creds: Credentials, *args: str) -> Step:
        return self.as_user(creds, sys.executable, "-m", "bake", *args)

    def iam_policy(self, role: str) -> str:
        p = subprocess.run([sys.executable, "-m", "bake", "iam-policy", "--role", role, "--config", str(self.config)],
                           cwd=self.dir, text=True, capture_output=True, check=True)
        return p.stdout

    def tf(self, creds: Credentials, *args: str) -> Step:
        return self.as_user(creds, "terraform", f"-chdir={self.stack}", *args)


def project_config(layout, images: list[str], ecr_images: list[str], state: Path) -> str:  # noqa: ANN001
    """The sample config with pool cpu's DISTRIBUTE keys and its state at ``state``: what the
    IAM tests run, and what docs/iam.md shows the policies of."""
    doc = tomlkit.parse(sample_config.render(layout, images, ecr_images))
    doc["state"]["path"] = str(state)
    cpu = doc["pools"]["cpu"]
    for key, value in DISTRIBUTE.items():
        if isinstance(value, dict):
            table = tomlkit.table()
            table.update(value)
            cpu[key] = table
        else:
            cpu[key] = value
    return tomlkit.dumps(doc)


def new_project(dir: Path, moto: IamMoto, sandbox, ) -> IamProject:  # noqa: ANN001
    """The project config against ``moto``, with its Terraform state in ``dir``."""
    info = sandbox.info
    doc = tomlkit.parse(project_config(sandbox.layout, info.images, info.ecr_images, dir / "terraform.tfstate"))
    # The builder settings of the sample pools, for the pool `bake adopt` adds.
    builder = {k: doc["pools"]["cpu"][k] for k in ("ssh_host", "ssh_cidrs", "ssh_user", "root_volume_size")}
    defaults = tomlkit.table()
    defaults.update(builder)
    doc.add("defaults", defaults)
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "bake.toml").write_text(tomlkit.dumps(doc))
    return IamProject(dir, moto=moto, sandbox_env=sandbox.env())


def first_failure(steps: list[Step]) -> Step | None:
    return next((s for s in steps if not s.ok), None)


def run_steps(*calls) -> list[Step]:  # noqa: ANN002
    """Run each call (a function returning a Step) until one fails."""
    done = []
    for call in calls:
        step = call()
        done.append(step)
        if not step.ok:
            break
    return done


def make_legacy_group(moto: IamMoto, name: str) -> str:
    """A group made the old way (launch configuration), as the administrator."""
    asg, ec2 = moto.client("autoscaling"), moto.client("ec2")
    lc = f"{name}-lc"
    asg.create_launch_configuration(
        LaunchConfigurationName=lc, ImageId="ami-ekslinux", InstanceType="t3.large", UserData="#!/bin/bash\necho hi",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "VolumeType": "gp3"}}],
    )
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]
    asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName=lc, MinSize=0, MaxSize=2,
                                  DesiredCapacity=0, VPCZoneIdentifier=subnet)
    return name


# --- the uses, one per role ---------------------------------------------------------------

def adopt(p: IamProject, creds: Credentials, group: str) -> list[Step]:
    """``bake adopt``: reads the live group; writes bake.toml (a `plan` use)."""
    return [p.bake(creds, "adopt", group, "--pool", "adopted", "--config", str(p.config),
                   "--image", sandbox_image(p))]


def sandbox_image(p: IamProject) -> str:
    return tomlkit.parse(p.config.read_text())["pools"]["legacy"]["images"][0]


def bake(p: IamProject, creds: Credentials) -> list[Step]:
    """A whole bake of every pool."""
    return [p.bake(creds, "build", "--config", str(p.config), "--json")]


def deploy(p: IamProject, creds: Credentials, rollout: Callable[[], None] | None = None) -> list[Step]:
    """Synthesis (no AWS), then terraform init, plan and apply: the launch template, the launch
    configuration, the adopted group's import. Then ``rollout()`` (new AMIs in the lock) and
    the same again: a new template version, a configuration replaced, the groups switched."""
    def once() -> list[Callable[[], Step]]:
        return [lambda: p.as_user(creds, sys.executable, str(ROOT / "main.py")),
                lambda: p.tf(creds, "init", "-input=false", "-no-color"),
                lambda: p.tf(creds, "plan", "-input=false", "-no-color", "-out=tfplan"),
                lambda: p.tf(creds, "apply", "-input=false", "-no-color", "-auto-approve", "tfplan")]

    def new_amis() -> Step:
        if rollout:
            rollout()
        return Step(["(new AMIs in the lock)"], 0, "", "")

    return run_steps(*once(), new_amis, *(once() if rollout else []))


def plan(p: IamProject, creds: Credentials) -> list[Step]:
    """What a pull request runs: bake plan, synthesis, terraform plan, the review comment."""
    return run_steps(
        lambda: p.bake(creds, "plan", "--config", str(p.config)),
        lambda: p.as_user(creds, sys.executable, str(ROOT / "main.py")),
        lambda: p.tf(creds, "init", "-input=false", "-no-color"),
        lambda: p.tf(creds, "plan", "-input=false", "-no-color", "-out=tfplan"),
        lambda: _show(p, creds),
        lambda: p.bake(creds, "review", "--plan", str(p.dir / "plan.json"), "--lock", str(p.lock)),
    )


def _show(p: IamProject, creds: Credentials) -> Step:
    step = p.tf(creds, "show", "-json", "tfplan")
    if step.ok:
        (p.dir / "plan.json").write_text(step.stdout)
    return step


def lifecycle(p: IamProject, creds: Credentials) -> list[Step]:
    """prune (--keep 0: what the lock does not hold goes) and sweep (a killed bake's leftovers go);
    see lifecycle_leftovers."""
    return run_steps(
        lambda: p.bake(creds, "prune", "--keep", "0", "--yes", "--config", str(p.config)),
        lambda: p.bake(creds, "sweep", "--older-than", "1h", "--yes", "--config", str(p.config)),
    )


def lifecycle_leftovers(moto: IamMoto, pool: str, hours_ago: float = 30) -> dict[str, str]:
    """Made by the administrator with the tool's tags, ``hours_ago``: what a bake killed by
    SIGKILL leaves (key pair, group, running builder), a snapshot whose AMI was never registered
    (sweep's), and a finished AMI of ``pool`` that is not in the lock (prune's, with --keep 0)."""
    from datetime import datetime, timedelta, timezone

    ec2 = moto.client("ec2")
    created = (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    run_id = f"killed-{uuid.uuid4().hex[:8]}"

    def spec(kind: str, role: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": tags.as_aws(tags.run_tags(run_id, pool, role, created))}]

    key = f"bake-{pool}-{run_id}"
    ec2.create_key_pair(KeyName=key, KeyType="ed25519", TagSpecifications=spec("key-pair", "key-pair"))
    sg = ec2.create_security_group(GroupName=key, Description="bake builder",
                                   TagSpecifications=spec("security-group", "security-group"))["GroupId"]
    inst = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="m5.large", KeyName=key,
                             SecurityGroupIds=[sg], TagSpecifications=spec("instance", "builder"))["Instances"][0]["InstanceId"]
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    orphan = ec2.create_snapshot(VolumeId=vol, TagSpecifications=spec("snapshot", "ami"))["SnapshotId"]
    old_run = f"old-{uuid.uuid4().hex[:8]}"
    finished = tags.as_aws({**tags.run_tags(old_run, pool, "ami", created), tags.KEY_FINGERPRINT: "sha256:" + "1" * 64})
    ami = ec2.create_image(InstanceId=inst, Name=f"bake-{pool}-{old_run}",
                           TagSpecifications=[{"ResourceType": "image", "Tags": finished}])["ImageId"]
    _tag_snapshots(ec2, ami, finished)  # as a bake tags them: prune may only delete what carries the tool's tag
    # Its copy in the pool's other region: prune goes there too.
    old_copy = copy_ami(moto, ami, finished)
    return {"key": key, "sg": sg, "instance": inst, "orphan_snapshot": orphan, "old_ami": ami, "old_copy": old_copy}


def copy_ami(moto: IamMoto, ami: str, aws_tags: list[dict]) -> str:
    """As the administrator: a copy of ``ami`` in COPY_REGION with ``aws_tags``, as a bake makes it."""
    ec2 = moto.client("ec2", region=COPY_REGION)
    on_copy = [{"ResourceType": kind, "Tags": aws_tags} for kind in ("image", "snapshot")]  # as CopyImage tags it
    return ec2.copy_image(SourceImageId=ami, SourceRegion="us-east-1", Name=f"copy-{ami}", TagSpecifications=on_copy)["ImageId"]


def _tag_snapshots(ec2, ami: str, aws_tags: list[dict]) -> list[str]:  # noqa: ANN001
    snapshots = [m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"]
                 if "Ebs" in m]
    ec2.create_tags(Resources=snapshots, Tags=aws_tags)
    return snapshots


def leftovers(moto: IamMoto) -> dict[str, list[str]]:
    """Every resource with the tool's tag that still exists (the administrator looks): the AMIs
    in both regions."""
    ec2 = moto.client("ec2")
    f = [{"Name": f"tag:{tags.KEY_TOOL}", "Values": [tags.TOOL]}]
    images = [i["ImageId"] for region in ("us-east-1", COPY_REGION)
              for i in moto.client("ec2", region=region).describe_images(Owners=["self"], Filters=f)["Images"]]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    return {
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=[*f, {"Name": "instance-state-name", "Values": live}])["Reservations"]
                      for i in r["Instances"]],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=f)["KeyPairs"]],
        "images": images,
    }


def recorded_amis(p: IamProject, pools: list[str]) -> None:
    """Stand-ins for baked AMIs (made by the administrator with the tool's tags) recorded in the
    lock: the Terraform uses need lock entries, not a bake (which needs the shared sshd). Each has
    its snapshots (tagged, as a bake tags them: fast snapshot restore goes on them) and, for a pool
    with DISTRIBUTE, its copy in COPY_REGION (the SSM parameter is written there too)."""
    from bake.model.lock import ImageDigest, LockEntry, LockFile, PoolLock

    ec2 = p.moto.client("ec2")
    lock = LockFile(p.lock)
    for pool in pools:
        created = "2026-01-01T00:00:00Z"
        inst = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, InstanceType="m5.large")["Instances"][0]["InstanceId"]
        aws_tags = tags.as_aws(tags.run_tags("stand-in", pool, "ami", created))
        ami = ec2.create_image(InstanceId=inst, Name=f"bake-{pool}-{uuid.uuid4().hex[:6]}", TagSpecifications=[
            {"ResourceType": "image", "Tags": aws_tags}])["ImageId"]
        ec2.terminate_instances(InstanceIds=[inst])
        snapshots = _tag_snapshots(ec2, ami, aws_tags)
        copies = {COPY_REGION: copy_ami(p.moto, ami, aws_tags)} if pool == "cpu" else None
        entry = LockEntry(ami_id=ami, region="us-east-1", fingerprint="sha256:" + "0" * 64, base_ami="ami-ekslinux",
                          images=[ImageDigest(ref="quay.io/org/env:rev9", digest="sha256:" + "a" * 64)], built_at=created,
                          snapshot_ids=snapshots, copies=copies)
        lock.update(pool, lambda _: PoolLock(current=entry))
