"""The sandbox against the real thing: moto, sshd with moto-backed keys, the overlay,
containerd and dockerd pulling over TLS, and the ECR look-alike's auth."""

from __future__ import annotations

import io
import subprocess
import uuid
from pathlib import Path

import paramiko
import pytest
from support.node_runtime import node_ctr
import requests

from bake_sandbox.layout import SYSTEM_CA_BUNDLE

pytestmark = pytest.mark.sandbox


def _ssh(sandbox, key: paramiko.PKey, timeout: float = 10) -> paramiko.SSHClient:
    host, port = sandbox.info.ssh_endpoint
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host, port=port, username=sandbox.info.ssh_user, pkey=key, timeout=timeout,
                   allow_agent=False, look_for_keys=False, banner_timeout=timeout, auth_timeout=timeout)
    return client


def _run(client: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


@pytest.fixture
def builder_login(sandbox, ec2):
    """A fresh ed25519 key imported into moto and an instance running with it; terminated after."""
    key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if key is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))
    name = f"sandbox-test-{uuid.uuid4().hex[:8]}"
    ec2.import_key_pair(KeyName=name, PublicKeyMaterial=f"{key.get_name()} {key.get_base64()}".encode())
    instance = ec2.run_instances(ImageId=sandbox.info.base_ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
                                 KeyName=name)["Instances"][0]["InstanceId"]
    yield key, instance
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_key_pair(KeyName=name)


def test_moto_answers_and_publishes_the_eks_base_ami(sandbox):
    ssm = sandbox.client("ssm")
    value = ssm.get_parameter(Name=sandbox.info.base_ami_ssm_parameter)["Parameter"]["Value"]
    assert value == sandbox.info.base_ami
    images = sandbox.client("ec2").describe_images(ImageIds=[value])["Images"]
    assert images and images[0]["State"] == "available"


def test_env_points_at_the_sandbox(sandbox):
    import boto3

    env = sandbox.env()
    assert env["AWS_ENDPOINT_URL"] == sandbox.info.moto_endpoint
    # boto3 with no explicit endpoint follows AWS_ENDPOINT_URL (the fixture set the environment).
    assert boto3.client("sts").get_caller_identity()["Account"] == sandbox.info.account


def test_ssh_login_only_while_the_instance_runs(sandbox, ec2, builder_login):
    key, instance = builder_login
    with _ssh(sandbox, key) as client:
        code, out, _ = _run(client, "id -un && sudo -n id -u")
        assert code == 0 and out.split() == ["ec2-user", "0"]
    ec2.terminate_instances(InstanceIds=[instance])
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(sandbox, key).close()


def test_unknown_key_is_refused(sandbox):
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(sandbox, paramiko.RSAKey.generate(2048)).close()


def test_deletions_over_ssh_land_in_the_overlay_not_on_the_host(sandbox, builder_login):
    key, _ = builder_login
    probe = Path(f"/etc/bake-sandbox-probe-{uuid.uuid4().hex[:8]}")
    probe.write_text("the host's file\n")  # on the host, before the builder ever touched it
    try:
        with _ssh(sandbox, key) as client:
            code, _, err = _run(client, f"sudo rm {probe} && test ! -e {probe}")
            assert code == 0, err
            code, out, _ = _run(client, "echo builder > /tmp/x; sudo sh -c 'echo changed > /etc/bake-sandbox-written'; echo ok")
            assert out.strip() == "ok"
        assert probe.read_text() == "the host's file\n"
        assert not Path("/etc/bake-sandbox-written").exists()
        assert str(probe) in sandbox.deleted_paths()
        whiteout = sandbox.info.overlay_upper / str(probe).lstrip("/")
        st = whiteout.lstat()
        assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0  # char device 0:0
        changes = {c.path: c.kind for c in sandbox.overlay_changes()}
        assert changes["/etc/bake-sandbox-written"] == "file"
    finally:
        probe.unlink(missing_ok=True)


def test_ctr_pull_over_ssh(sandbox, builder_login):
    """The builder boots as an EKS AL2023 AMI does: containerd installed (2.1), not running, not
    enabled; `systemctl start` serves it on the node's socket, `systemctl stop` ends it."""
    key, _ = builder_login
    ref = sandbox.info.images[0]
    with _ssh(sandbox, key) as client:
        code, before, _ = _run(client, "sudo systemctl is-active containerd; sudo systemctl is-enabled containerd; "
                                       "sudo ctr --timeout 1s version")
        assert code != 0 and before.split()[:2] == ["inactive", "disabled"], before
        code, out, err = _run(client, "sudo systemctl start containerd && sudo containerd --version && "
                                      f"sudo ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d {ref} && "
                                      "sudo ctr -n k8s.io images ls -q; sudo systemctl stop containerd")
        assert code == 0, err + out
        code, after, _ = _run(client, "sudo systemctl is-active containerd")
    assert ref in out.split() and " 2.1." in out.splitlines()[0]
    assert after.strip() == "inactive" and not sandbox.node_containerd_state()["running"]


def test_sudo_docker_pull(sandbox):
    ref = sandbox.info.images[1]
    r = subprocess.run(["sudo", "-n", "docker", "pull", ref], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_registry_serves_samples_over_tls(sandbox):
    for ref in sandbox.info.images:
        host, _, rest = ref.partition("/")
        repo, _, tag = rest.rpartition(":")
        r = requests.head(f"https://{host}/v2/{repo}/manifests/{tag}", verify=SYSTEM_CA_BUNDLE, timeout=10,
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 200, ref
        assert r.headers["Docker-Content-Digest"].startswith("sha256:")


def test_ecr_lookalike_demands_moto_token(sandbox):
    import base64

    ref = sandbox.info.ecr_images[0]
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    url = f"https://{host}/v2/{repo}/manifests/{tag}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    assert requests.head(url, verify=SYSTEM_CA_BUNDLE, timeout=10, headers=accept).status_code == 401
    token = sandbox.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "AWS"
    assert requests.head(url, auth=(user, "wrong"), verify=SYSTEM_CA_BUNDLE, timeout=10, headers=accept).status_code == 401
    assert requests.head(url, auth=(user, password), verify=SYSTEM_CA_BUNDLE, timeout=10, headers=accept).status_code == 200
    # containerd's client refuses it anonymously and pulls it with the token.
    anon = node_ctr(sandbox, "-n", "k8s.io", "images", "pull", ref, check=False, timeout=60)
    assert anon.returncode != 0
    ok = node_ctr(sandbox, "-n", "k8s.io", "images", "pull", "--user", f"{user}:{password}", ref, check=False, timeout=60)
    assert ok.returncode == 0, ok.stderr


def test_push_image_changes_the_digest(sandbox):
    first = sandbox.push_image("env/changing", "v1", size_mb=0.1)
    second = sandbox.push_image("env/changing", "v1", size_mb=0.1)
    assert first != second
    same = sandbox.push_image("env/changing", "v1", size_mb=0.1, seed=7)
    assert sandbox.push_image("env/changing", "v1", size_mb=0.1, seed=7) == same


def test_status_and_cli(sandbox):
    import sys

    status = sandbox.status()
    node = status.pop("node containerd")  # the builder's, stopped between bakes as on a fresh AMI
    assert node.startswith("2.1 (stopped; boots stopped)"), node
    assert all(v in ("up", "installed", "present") or v.startswith("up") for v in status.values())
    out = subprocess.run([sys.executable, "-m", "bake", "sandbox", "env"], capture_output=True, text=True, check=True).stdout
    assert f"export AWS_ENDPOINT_URL={sandbox.info.moto_endpoint}" in out.splitlines()
    path = subprocess.run([sys.executable, "-m", "bake", "sandbox", "path"], capture_output=True, text=True, check=True).stdout
    assert Path(path.strip()) == sandbox.info.state_dir
    from bake.model.config import load_config

    config = load_config(sandbox.info.config_path)
    assert set(config.pools) == {"cpu", "legacy"}
    assert config.pools["cpu"].images == [*sandbox.info.images, *sandbox.info.ecr_images]
    assert config.pools["legacy"].runtime == "docker"


def test_ssh_login_for_a_registered_private_iam_moto(sandbox, tmp_path):
    """A private moto enforcing IAM (bake_sandbox.iam_moto) registers with the keys command: its
    running instances' keys log in (the calls are signed with its administrator's keys), a
    terminated one's do not, and none do once it is unregistered."""
    from bake_sandbox import builder
    from bake_sandbox.iam_moto import iam_moto_server

    builder.serve_extra_endpoints(sandbox.layout)  # a sandbox started by an older checkout has another
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(_ed25519_pem()))
    with iam_moto_server(tmp_path, sandbox.layout) as moto:
        # Only this moto's own file: other private motos (parallel tests) may be registered too.
        registration = builder.extra_endpoints_dir(sandbox.layout) / f"{moto.endpoint.rsplit(':', 1)[1]}.json"
        assert registration.is_file()
        ec2 = moto.client("ec2")
        ec2.import_key_pair(KeyName="private", PublicKeyMaterial=f"{key.get_name()} {key.get_base64()}".encode())
        first = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, KeyName="private")["Instances"][0]
        with _ssh(sandbox, key) as client:
            assert _run(client, "id -un")[1].split() == ["ec2-user"]
        ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
        with pytest.raises(paramiko.AuthenticationException):
            _ssh(sandbox, key).close()
        ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1, KeyName="private")
    assert not registration.exists()
    with pytest.raises(paramiko.AuthenticationException):  # its instance still "runs", but it is gone
        _ssh(sandbox, key).close()


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def test_a_command_s_output_after_its_exit_status_is_kept(sandbox, builder_login):
    """sshd sends the exit status when the command is reaped; output still in the pipe (here a
    background child's, a second later) follows it. ``Connection.run`` reads to the channel's
    EOF: stopping at the exit status lost the last line of a ``du`` once (a failed bake)."""
    from bake.cancel import CancelToken
    from bake.ssh import Connection

    key, _ = builder_login
    host, port = sandbox.info.ssh_endpoint
    with Connection(host, port, sandbox.info.ssh_user, key, paramiko.AutoAddPolicy(), CancelToken()) as conn:
        conn.open(timeout=30)
        res = conn.run("(sleep 1; echo tail) & echo head")
    assert res.exited == 0
    assert res.stdout.split() == ["head", "tail"]
