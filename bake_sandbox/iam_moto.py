"""A private moto server that enforces IAM identity policies: the least-privilege proof.

moto checks every signed request against the caller's identity policies once its count of
unauthenticated requests is used up (``INITIAL_NO_AUTH_ACTION_COUNT``; ``/moto-api/reset-auth``
sets it on a running server). This server starts open, creates an administrator (the test's own
eyes: it checks what was left) and the EKS base AMI parameter, then turns enforcement on: from
then every call needs an IAM user's keys. Each use's user is made with exactly the policy
``python -m bake iam-policy`` prints, by :meth:`IamMoto.create_user`.

It runs ``bake_sandbox.moto_server`` in IAM mode (see there: moto matches no Resource element
outside S3, and every decision is logged). The sandbox's sshd serves its builders' key pairs too
while it is registered in ``builder.extra_endpoints_dir`` (see ``builder.KEYS_SCRIPT``), so a whole
bake runs against it. Never the shared sandbox's moto: other tests use that one unauthenticated.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bake_sandbox.layout import BASE_AMI, BASE_AMI_PARAMETER, REGION, Layout
from bake_sandbox.moto import REPO_ROOT
from bake_sandbox.private_moto import private_moto_server

ADMIN = "bake-test-admin"
ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass(frozen=True)
class Credentials:
    user: str
    access_key_id: str
    secret_access_key: str

    def env(self, endpoint: str, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with this user's keys and ``endpoint``
        and no other credential: the environment a process (bake, terraform) runs with as this user."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in DROPPED}
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": self.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": self.secret_access_key, "AWS_REGION": REGION,
                    "AWS_DEFAULT_REGION": REGION})
        return env


DROPPED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
           "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@dataclass(frozen=True)
class IamMoto:
    endpoint: str
    admin: Credentials
    action_log: Path

    def client(self, service: str, creds: Credentials | None = None, region: str = REGION) -> Any:
        import boto3

        c = creds or self.admin
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id=c.access_key_id, aws_secret_access_key=c.secret_access_key)

    def create_user(self, name: str, policy: str) -> Credentials:
        """An IAM user holding exactly ``policy`` (an inline policy), and its access key."""
        return _user(self.client("iam"), name, policy)

    def actions(self, creds: Credentials | str) -> list[tuple[str, bool]]:
        """(action, allowed) for every call ``creds`` (or the user of that name) made, in order."""
        user = creds if isinstance(creds, str) else creds.user
        out = []
        for line in self.action_log.read_text().splitlines() if self.action_log.exists() else []:
            d = json.loads(line)
            if d["caller"].endswith(f":user/{user}"):
                out.append((d["action"], d["allowed"]))
        return out


def _user(iam: Any, name: str, policy: str) -> Credentials:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(name, key["AccessKeyId"], key["SecretAccessKey"])


def _open_client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")


@contextmanager
def iam_moto_server(work_dir: Path, layout: Layout | None = None) -> Iterator[IamMoto]:
    """Start the server, make the administrator and the base AMI parameter, enforce IAM, and
    (with ``layout``) let the sandbox's sshd serve its builders' keys; undo all that at the end."""
    from bake_sandbox import builder

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / "moto-actions.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    env.update({"BAKE_MOTO_IAM": "1", "BAKE_MOTO_ACTION_LOG": str(log), "PYTHONPATH": str(REPO_ROOT)})
    program = [sys.executable, "-m", "bake_sandbox.moto_server"]
    with private_moto_server(work_dir, program=program, env=env) as endpoint:
        admin = _user(_open_client(endpoint, "iam"), ADMIN, ADMIN_POLICY)
        _open_client(endpoint, "ssm").put_parameter(Name=BASE_AMI_PARAMETER, Value=BASE_AMI, Type="String")
        req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).read()
        registration = None
        if layout is not None:
            registration = builder.extra_endpoints_dir(layout) / f"{endpoint.rsplit(':', 1)[1]}.json"
            registration.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            registration.touch(mode=0o600)
            registration.write_text(json.dumps({"endpoint": endpoint, "access_key_id": admin.access_key_id,
                                                "secret_access_key": admin.secret_access_key}))
        try:
            yield IamMoto(endpoint, admin, log)
        finally:
            if registration is not None:
                registration.unlink(missing_ok=True)
