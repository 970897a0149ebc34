"""Unit-level proofs (no sandbox): the remote-command builders quote everything, and the
security group's default admits only the runner's own address.

The quoting test does not read the command strings: it runs them in a real ``sh`` with fake
``sudo``, ``ctr`` and ``docker`` on PATH that record the argv and stdin they receive. Quoting is
right exactly when every hostile value arrives as one intact argument and nothing else ran.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from moto import mock_aws

from bake.cancel import CancelToken
from bake.errors import UsageError
from bake.model.config import PoolConfig
from bake.model.images import Credential, ResolvedImage
from bake.model.refs import parse_reference
from bake.progress import NullReporter
from bake.runtimes import Containerd, Docker, sudo
from bake.ssh import Result, UnexpectedExit
from bake.steps import security_group
from bake.steps.base import BuildState
from bake.steps.security_group import StepSecurityGroup

RECORDER = """#!/bin/sh
# record argv (one JSON list per call) and stdin, as the real tool would receive them
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$LOG/{name}.argv"
cat >> "$LOG/{name}.stdin"
"""
FAKE_SUDO = """#!/bin/sh
[ "$1" = "-n" ] && shift
exec "$@"
"""


class LocalShell:
    """Connection.run's contract, executed by a local sh with the fake tools first on PATH."""

    def __init__(self, bin_dir: Path, log: Path):
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}
        self.commands: list[str] = []

    def run(self, command: str, *, stdin: str | None = None, warn: bool = False, timeout: float = 60,
            shown: str | None = None) -> Result:
        self.commands.append(command)
        p = subprocess.run(["sh", "-c", command], input=stdin or "", capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        res = Result(command, p.stdout, p.stderr, p.returncode)
        if p.returncode and not warn:
            raise UnexpectedExit(res, shown)
        return res


@pytest.fixture
def shell(tmp_path):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name in ("ctr", "docker"):
        (bin_dir / name).write_text(RECORDER.format(name=name))
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return LocalShell(bin_dir, log), log


def _calls(log: Path, name: str) -> list[list[str]]:
    path = log / f"{name}.argv"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _hostile(marker: Path) -> list[str]:
    return [
        f"x; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"a' ; touch {marker}; echo 'b",
        f'a" ; touch {marker}; echo "b',
        f"a\ntouch {marker}",
        f"| touch {marker}",
        "--help",
        "-rf /",
    ]


# grammar-valid references: the grammar admits none of ; $ ` ' " | or spaces, but these are the
# edge cases it does admit (ports, IPv6, digests, separators, many path components)
REFS = [
    "localhost:5000/a__b/c--d/e.f_g:T.a-g_1",
    "[::1]:5000/ns/img@sha256:" + "a" * 64,
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/x/y:latest",
    "python",
]


@pytest.mark.parametrize("ref", REFS)
def test_containerd_pull_passes_hostile_credentials_as_data(shell, tmp_path, ref):
    conn, log = shell
    marker = tmp_path / "pwned"
    for bad in _hostile(marker):
        cred = Credential(registry="r.example:5000", username=bad, password=bad + "-pw")
        image = ResolvedImage(parse_reference(ref), "sha256:" + "b" * 64, cred)
        Containerd().pull(conn, image, 30)
        argv = _calls(log, "ctr")[-1]
        sent = argv[argv.index("--user") + 1]
        # the credential travels as one stdin line: a line break ends it (and runs nothing)
        assert sent == f"{bad}:{bad}-pw" if "\n" not in bad else sent == bad.split("\n")[0]
        assert argv[-1] == parse_reference(ref).canonical
        assert not marker.exists(), bad
        # the password is on stdin only, never in the command line we built
        assert bad + "-pw" not in conn.commands[-1]


@pytest.mark.parametrize("ref", REFS)
def test_docker_commands_pass_hostile_values_as_single_arguments(shell, tmp_path, ref):
    conn, log = shell
    marker = tmp_path / "pwned"
    docker = Docker()
    for bad in _hostile(marker):
        cred = Credential(registry=parse_reference(ref).registry, username=bad, password=bad + "-pw")
        docker.login(conn, cred)
        assert _calls(log, "docker")[-1] == ["login", "--username", bad, "--password-stdin", cred.registry]
        assert bad + "-pw" not in conn.commands[-1]
        image = ResolvedImage(parse_reference(ref), "sha256:" + "c" * 64, cred)
        docker.pull(conn, image, 30)
        assert _calls(log, "docker")[-1] == ["pull", "--quiet", ref]
        docker.digests(conn, [image])
        assert _calls(log, "docker")[-1][-1] == ref
        docker.logout(conn, cred.registry)
        assert _calls(log, "docker")[-1] == ["logout", cred.registry]
        assert not marker.exists(), bad
    assert (log / "docker.stdin").read_text().count("-pw\n") == len(_hostile(marker))


def test_sudo_wraps_any_script_as_one_argument(shell, tmp_path):
    conn, log = shell
    marker = tmp_path / "pwned"
    for bad in _hostile(marker):
        script = f"ctr {bad}"  # what a builder might compose; sudo() must keep it whole
        conn.run(sudo(f"exec ctr {__import__('shlex').quote(bad)}"))
        assert _calls(log, "ctr")[-1] == [bad]
        assert not marker.exists(), script


# --- the temporary security group's default ----------------------------------------------


@pytest.fixture
def ec2(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="us-east-1")


def _state(ec2, **pool_kw) -> BuildState:
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], **pool_kw)
    return BuildState(pool=pool, run_id="20260101T000000Z-abcdef", created_at="2026-01-01T00:00:00Z",
                      region="us-east-1", ec2=ec2, base_ami="ami-ekslinux", images=[], fingerprint="sha256:f",
                      reporter=NullReporter(), cancel=CancelToken())


class _Answer:
    def __init__(self, text: str):
        self.text = text


def _ingress(ec2, group_id: str) -> list[str]:
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    return [r["CidrIp"] for p in perms for r in p.get("IpRanges", [])] + \
        [r["CidrIpv6"] for p in perms for r in p.get("Ipv6Ranges", [])]


def test_default_ssh_cidr_is_the_runners_own_address(ec2, monkeypatch):
    asked = []

    def fake_get(url, timeout):
        asked.append(url)
        return _Answer("198.51.100.23\n")

    import requests

    monkeypatch.setattr(requests, "get", fake_get)
    st = _state(ec2)  # ssh_host public_ip, no ssh_cidrs
    StepSecurityGroup().run(st)
    assert asked == [security_group.CHECKIP_URL]
    assert _ingress(ec2, st.security_group_id) == ["198.51.100.23/32"]
    StepSecurityGroup().cleanup(st)


@pytest.mark.parametrize("answer", ["", "<html>captive portal</html>", "0.0.0.0/0", "not an address"])
def test_no_runner_address_is_an_error_never_the_whole_internet(ec2, monkeypatch, answer):
    import requests

    monkeypatch.setattr(requests, "get", lambda url, timeout: _Answer(answer))
    st = _state(ec2)
    with pytest.raises(UsageError, match="set ssh_cidrs in bake.toml"):
        StepSecurityGroup().run(st)
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["bake-*"]}])["SecurityGroups"]
    assert groups == [], "no group may be created without a known source address"


def test_checkip_unreachable_is_an_error(ec2, monkeypatch):
    import requests

    def down(url, timeout):
        raise requests.ConnectionError("no route")

    monkeypatch.setattr(requests, "get", down)
    with pytest.raises(UsageError, match="cannot find this runner's public address"):
        StepSecurityGroup().run(_state(ec2))


def test_private_ip_default_is_the_vpc_not_the_world(ec2, monkeypatch):
    import requests

    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("no checkip for private_ip"))
    st = _state(ec2, ssh_host="private_ip")
    StepSecurityGroup().run(st)
    cidrs = _ingress(ec2, st.security_group_id)
    assert cidrs and "0.0.0.0/0" not in cidrs and "::/0" not in cidrs
    StepSecurityGroup().cleanup(st)
