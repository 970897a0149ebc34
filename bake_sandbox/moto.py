"""The AWS stand-in: a moto server on loopback, seeded with what EC2/SSM would already hold.

moto keeps its state in memory: a restart forgets instances and key pairs, so ``up`` leaves a
running moto alone and only re-seeds (idempotently) what the sandbox itself needs.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import bake
from bake_sandbox import bottlerocket, builder, moto_volumes, node_containerd
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import BASE_AMI, BASE_AMI_PARAMETER, CREDENTIALS, HOST, REGION, Layout
from bake_sandbox.process import Daemon, port_open

REPO_ROOT = Path(bake.__file__).resolve().parent.parent


def daemon(layout: Layout) -> Daemon:
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(REPO_ROOT), moto_volumes.ENV: str(volumes_dir(layout)),
           # a Bottlerocket builder's boot stand-in mounts its data volume in the builder's namespace
           bottlerocket.BUILDER_PID_ENV: str(builder.daemon(layout).pid_file),
           # ... and starts the node's containerd there, as Bottlerocket runs it from boot
           bottlerocket.SYSTEMCTL_ENV: str(node_containerd.bin_dir(layout) / "systemctl")}
    # moto must not follow a caller's endpoint; the sandbox's AWS is always strict (moto_strict)
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "BAKE_MOTO_STRICT"):
        env.pop(var, None)
    return Daemon(
        name="moto",
        argv=[sys.executable, "-m", "bake_sandbox.moto_server", "-H", HOST, "-p", str(layout.moto_port)],
        run_dir=layout.run_dir,
        program="bake_sandbox.moto_server",
        env=env,
    )


def volumes_dir(layout: Layout) -> Path:
    """The data volumes' and their snapshots' bytes (bake_sandbox.moto_volumes)."""
    return layout.root / "volumes"


def client(layout: Layout, service: str, region: str = REGION) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=layout.moto_endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def start(layout: Layout) -> None:
    d = daemon(layout)
    if not d.running() and port_open(HOST, layout.moto_port):
        raise SandboxError(f"moto: port {layout.moto_port} is taken by another process (set BAKE_SANDBOX_MOTO_PORT)")
    d.start()
    d.wait_ready(lambda: port_open(HOST, layout.moto_port), timeout=60, what=f"listening on {layout.moto_endpoint}")
    seed(layout)


def seed(layout: Layout) -> None:
    """Publish the EKS base AMI parameter (unless a test already published another value)."""
    ssm = client(layout, "ssm")
    try:
        ssm.get_parameter(Name=BASE_AMI_PARAMETER)
    except ssm.exceptions.ParameterNotFound:
        ssm.put_parameter(Name=BASE_AMI_PARAMETER, Value=BASE_AMI, Type="String")


def ecr_password(layout: Layout) -> str:
    """The password moto's GetAuthorizationToken hands out: what the ECR look-alike must accept."""
    data = client(layout, "ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != "AWS" or not password:
        raise SandboxError(f"moto's ECR token decodes to user {user!r}, expected 'AWS:<password>'")
    return password


def stop(layout: Layout) -> None:
    daemon(layout).stop()


def status(layout: Layout) -> bool:
    return daemon(layout).running() and port_open(HOST, layout.moto_port)
