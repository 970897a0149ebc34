"""Unit-level proofs (no sandbox): the remote-command builders quote everything, and the
security group's default admits only the runner's own address.

The quoting test does not read the command strings: it runs them in a real ``sh`` with fake
``sudo``, ``ctr`` and ``docker`` on PATH that record the argv and stdin they receive. Quoting is
right exactly when every hostile value arrives as one intact argument and nothing else ran.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from bake.aws.images import Image
from bake.disk import DiskPlan, needed_bytes
from bake.errors import BakeError, ConfigError, UsageError
from bake.model.config import PoolConfig, parse_config
from bake.model.images import Credential, ResolvedImage
from bake.model.proxy_command import expand
from bake.proxy import ProxyProcess
from bake.model.refs import parse_reference
from bake.runtimes import Containerd, Docker, sudo
from bake.steps import security_group
from bake.steps.base import BuildState
from bake.steps.pull import pull_one
from bake.steps.security_group import StepSecurityGroup
from support.local_shell import LocalShell
from support.states import plan_for, state_for

RECORDER = """#!/bin/sh
# record argv (one JSON list per call) and stdin, as the real tool would receive them
{python} -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$LOG/{name}.argv"
cat >> "$LOG/{name}.stdin"
"""
# The builder's python3 running bake/cri.py: records its argv and answers that the CRI holds
# every reference asked for, as one image (the real program is tested against containerd in tests/cri).
FAKE_PYTHON3 = """#!/bin/sh
exec {python} -c '
import json, sys
with open(sys.argv[1] + "/python3.argv", "a") as f:
    f.write(json.dumps(sys.argv[2:]) + "\\n")
program = sys.stdin.read()
assert "ImageStatus" in program, "the CRI client arrives on stdin"
refs = sys.argv[sys.argv.index("-", 2) + 2:]  # after the program (stdin) and the socket
image = {{"id": "sha256:" + "d" * 64, "repo_tags": [], "repo_digests": ["r@sha256:" + "b" * 64], "pinned": False}}
print(json.dumps({{"runtime": "containerd", "version": "1.6.20", "images": {{r: image for r in refs}}}}))
' "$LOG" "$@"
"""
FAKE_SUDO = """#!/bin/sh
[ "$1" = "-n" ] && shift
exec "$@"
"""


@pytest.fixture
def shell(tmp_path):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name in ("ctr", "docker"):
        (bin_dir / name).write_text(RECORDER.format(name=name, python=sys.executable))
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (bin_dir / "python3").write_text(FAKE_PYTHON3.format(python=sys.executable))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}
    return LocalShell(env), log  # the fake tools first on PATH


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
        assert docker.lookup(conn, [ref, bad]).images == {ref: None, bad: None}
        assert _calls(log, "docker")[-2:] == [["image", "inspect", "--format", "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}", r]
                                              for r in (ref, bad)]
        docker.logout(conn, cred.registry)
        assert _calls(log, "docker")[-1] == ["logout", cred.registry]
        assert not marker.exists(), bad
    assert (log / "docker.stdin").read_text().count("-pw\n") == len(_hostile(marker))


# grammar-valid aliases at their edges: the remote commands must carry each as one argument
ALIASES = ["mirror.example:5000/a__b/c--d:T.a-g_1", "[::1]:5000/ns/img", "python", "r.example/x/y"]


@pytest.mark.parametrize("ref", REFS)
def test_containerd_references_and_cri_lookup_pass_values_as_single_arguments(shell, tmp_path, ref):
    conn, log = shell
    marker = tmp_path / "pwned"
    image = ResolvedImage(parse_reference(ref), "sha256:" + "b" * 64, None)
    containerd = Containerd()
    image_id = containerd.add_references(conn, image, ALIASES)
    assert image_id == "sha256:" + "d" * 64
    # the CRI was asked about the pulled name, through the program on stdin
    assert _calls(log, "python3")[0] == ["-I", "-S", "-", containerd.socket, image.ref.canonical]
    # one `ctr images tag` names it by digest, by id and by every alias (tag and digest forms)
    tag = _calls(log, "ctr")[-1]
    assert tag[:8] == ["--address", containerd.socket, "-n", "k8s.io", "images", "tag", "--force", image.ref.canonical]
    assert image_id in tag and f"{image.ref.registry}/{image.ref.repository}@{image.digest}" in tag
    assert "mirror.example:5000/a__b/c--d:T.a-g_1" in tag and "[::1]:5000/ns/img@sha256:" + "b" * 64 in tag
    assert "docker.io/library/python@sha256:" + "b" * 64 in tag
    # hostile strings given to the lookup arrive whole and run nothing
    answer = containerd.lookup(conn, _hostile(marker))
    assert _calls(log, "python3")[-1] == ["-I", "-S", "-", containerd.socket, *_hostile(marker)]
    assert set(answer.images) == set(_hostile(marker))
    assert not marker.exists()


@pytest.mark.parametrize("ref", REFS)
def test_docker_aliases_are_tags_passed_as_single_arguments(shell, tmp_path, ref):
    conn, log = shell
    image = ResolvedImage(parse_reference(ref), "sha256:" + "c" * 64, None)
    Docker().add_references(conn, image, ALIASES)
    calls = _calls(log, "docker")
    # docker cannot hold ALIAS@DIGEST: only the aliases that carry a tag are added
    assert calls[:-1] == [["tag", ref, "mirror.example:5000/a__b/c--d:T.a-g_1"]]
    assert calls[-1] == ["image", "inspect", "--format", "{{.Id}}", ref]


def test_sudo_wraps_any_script_as_one_argument(shell, tmp_path):
    conn, log = shell
    marker = tmp_path / "pwned"
    for bad in _hostile(marker):
        script = f"ctr {bad}"  # what a builder might compose; sudo() must keep it whole
        conn.run(sudo(f"exec ctr {__import__('shlex').quote(bad)}"))
        assert _calls(log, "ctr")[-1] == [bad]
        assert not marker.exists(), script


# --- the temporary security group's default ----------------------------------------------


def _state(ec2, **pool_kw) -> BuildState:
    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], **pool_kw)
    return state_for(plan_for(pool), ec2)


class _Answer:
    def __init__(self, text: str):
        self.text = text


def _ingress(ec2, group_id: str) -> list[str]:
    perms = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    return [r["CidrIp"] for p in perms for r in p.get("IpRanges", [])] + \
        [r["CidrIpv6"] for p in perms for r in p.get("Ipv6Ranges", [])]


def test_default_ssh_cidr_is_the_runners_own_address(in_process_ec2, monkeypatch):
    asked = []

    def fake_get(url, timeout):
        asked.append(url)
        return _Answer("198.51.100.23\n")

    import requests

    monkeypatch.setattr(requests, "get", fake_get)
    st = _state(in_process_ec2)  # ssh_host public_ip, no ssh_cidrs
    StepSecurityGroup().run(st)
    assert asked == [security_group.CHECKIP_URL]
    assert _ingress(in_process_ec2, st.security_group_id) == ["198.51.100.23/32"]
    StepSecurityGroup().cleanup(st)


@pytest.mark.parametrize("answer", ["", "<html>captive portal</html>", "0.0.0.0/0", "not an address"])
def test_no_runner_address_is_an_error_never_the_whole_internet(in_process_ec2, monkeypatch, answer):
    import requests

    monkeypatch.setattr(requests, "get", lambda url, timeout: _Answer(answer))
    st = _state(in_process_ec2)
    with pytest.raises(UsageError, match="set ssh_cidrs in bake.toml"):
        StepSecurityGroup().run(st)
    groups = in_process_ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["bake-*"]}])["SecurityGroups"]
    assert groups == [], "no group may be created without a known source address"


def test_checkip_unreachable_is_an_error(in_process_ec2, monkeypatch):
    import requests

    def down(url, timeout):
        raise requests.ConnectionError("no route")

    monkeypatch.setattr(requests, "get", down)
    with pytest.raises(UsageError, match="cannot find this runner's public address"):
        StepSecurityGroup().run(_state(in_process_ec2))


def test_private_ip_default_is_the_vpc_not_the_world(in_process_ec2, monkeypatch):
    import requests

    monkeypatch.setattr(requests, "get", lambda *a, **k: pytest.fail("no checkip for private_ip"))
    st = _state(in_process_ec2, ssh_host="private_ip")
    StepSecurityGroup().run(st)
    cidrs = _ingress(in_process_ec2, st.security_group_id)
    vpc = in_process_ec2.describe_security_groups(GroupIds=[st.security_group_id])["SecurityGroups"][0]["VpcId"]
    vpc_cidrs = [a["CidrBlock"] for a in in_process_ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlockAssociationSet"]]
    assert sorted(cidrs) == sorted(vpc_cidrs), "private_ip admits exactly the builder VPC's CIDRs"
    StepSecurityGroup().cleanup(st)


# --- ssh_proxy_command: substitution into an argv, and the process's whole lifetime ---------

SSM = "aws ssm start-session --target %i --document-name AWS-StartSSHSession --parameters portNumber=%p"
GOOD = {"instance_id": "i-0123456789abcdef0", "host": "10.0.1.17", "port": 22, "user": "ec2-user"}


def test_proxy_command_tokens_become_parts_of_single_arguments():
    assert expand(SSM, **GOOD) == ["aws", "ssm", "start-session", "--target", "i-0123456789abcdef0", "--document-name",
                                   "AWS-StartSSHSession", "--parameters", "portNumber=22"]
    assert expand("nc %h %p", **{**GOOD, "host": "::1"}) == ["nc", "::1", "22"]
    # quoted words stay one word; %% is a literal %; %r is the user
    assert expand("sh -c 'exec nc %h %p' %r 100%%", **GOOD) == ["sh", "-c", "exec nc 10.0.1.17 22", "ec2-user", "100%"]


@pytest.mark.parametrize("key", ["instance_id", "host", "user"])
def test_proxy_command_refuses_hostile_values_before_anything_runs(tmp_path, key):
    marker = tmp_path / "pwned"
    template = f"sh -c 'touch {tmp_path}/ran-%i-%h-%r'"
    for bad in _hostile(marker) + ["-oProxyCommand=touch", "i-abc x", ""]:
        with pytest.raises(BakeError, match="ssh_proxy_command: refusing"):
            expand(template, **{**GOOD, key: bad})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template, why", [
    ("nc %h %x", "unknown token %x"), ("nc %h 50%", "a lone %"), ("nc 'unclosed", "cannot be split"), ("  ", "is empty"),
])
def test_proxy_command_template_errors_name_the_key(tmp_path, template, why):
    path = tmp_path / "bake.toml"
    with pytest.raises(ConfigError) as e:
        parse_config({"pools": {"cpu": {"base_ami": "ami-12345678", "images": ["python"],
                                        "ssh_proxy_command": template}}}, path)
    assert f"{path}: pools.cpu" in str(e.value) and why in str(e.value)


def test_proxy_command_with_ssh_cidrs_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="ssh_cidrs has no use with ssh_proxy_command"):
        parse_config({"pools": {"cpu": {"base_ami": "ami-12345678", "images": ["python"], "ssh_cidrs": ["10.0.0.0/8"],
                                        "ssh_proxy_command": "nc %h %p"}}}, tmp_path / "bake.toml")
    # and a HOST:PORT ssh_host needs no ssh_cidrs with a proxy: nothing is admitted
    cfg = parse_config({"pools": {"cpu": {"base_ami": "ami-12345678", "images": ["python"], "ssh_host": "192.0.2.1:22",
                                          "ssh_proxy_command": "nc %h %p"}}}, tmp_path / "bake.toml")
    assert cfg.pools["cpu"].ssh_cidrs is None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_proxy_process_gets_the_argv_intact_and_close_ends_it_and_its_children(tmp_path):
    script = tmp_path / "proxy.sh"
    # records its argv, starts a child that ignores SIGTERM (as a plugin might), then relays
    script.write_text(f"""#!/bin/sh
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" > {tmp_path}/argv
sh -c 'trap "" TERM; echo $$ > {tmp_path}/child; exec sleep 300' &
exec cat
""")
    script.chmod(0o755)
    argv = expand(f"{script} --target %i 'two words' %h", **GOOD)
    proxy = ProxyProcess(argv)
    proxy.send(b"ping\n")
    assert proxy.recv(5) == b"ping\n"
    deadline = time.monotonic() + 5
    while not (tmp_path / "child").exists() or not (tmp_path / "child").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int((tmp_path / "child").read_text())
    assert json.loads((tmp_path / "argv").read_text()) == ["--target", GOOD["instance_id"], "two words", GOOD["host"]]
    proxy.close()
    deadline = time.monotonic() + 3  # SIGKILL is delivered asynchronously
    while _alive(proxy.process.pid) or _alive(child):
        assert time.monotonic() < deadline, "the proxy or its child outlived close()"
        time.sleep(0.05)
    proxy.close()  # idempotent


def test_a_dying_proxy_is_an_end_of_stream_not_a_hang(tmp_path):
    proxy = ProxyProcess(["sh", "-c", "echo bye; exit 3"])
    proxy.settimeout(5)
    started = time.monotonic()
    assert proxy.recv(100).startswith(b"bye")
    assert proxy.recv(100) == b""  # paramiko's Packetizer reads b"" as EOF: a lost connection
    assert time.monotonic() - started < 2
    proxy.close()


# --- the builder's disk: sized from the images; a full disk fails at once, with the numbers ----

# containerd's answer when the content store's write hits ENOSPC (the Go error chain, as ctr prints it)
CTR_ENOSPC = """#!/bin/sh
{python} -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$LOG/ctr.argv"
cat > /dev/null
echo 'ctr: failed to copy: failed to send write: write /var/lib/containerd/io.containerd.content.v1.content/ingest/5f1d/data: no space left on device: unknown' >&2
exit 1
"""
FAKE_DF = """#!/bin/sh
echo "$@" >> "$LOG/df.argv"
echo 'Filesystem     1-blocks       Used Available Capacity Mounted on'
echo '/dev/nvme0n1p1 21462233088 20925362176 536870912 98% /'
"""


def test_a_full_disk_fails_the_pull_at_once_naming_image_free_and_needed(shell, tmp_path):
    conn, log = shell
    bin_dir = Path(conn.env["PATH"].split(":", 1)[0])
    (bin_dir / "ctr").write_text(CTR_ENOSPC.format(python=sys.executable))  # python3 is the CRI double
    (bin_dir / "df").write_text(FAKE_DF)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    pool = PoolConfig(name="cpu", base_ami="ami-12345678", images=["env/app:v1"], pull_retries=3)
    image = ResolvedImage(parse_reference("registry.example/env/app:v1"), "sha256:" + "d" * 64, None)
    disk = DiskPlan(gib=24, base_gib=8, compressed_bytes=3 * 2**30, images=1)
    st = state_for(plan_for(pool, [image], disk=disk, image_sizes={image.ref.original: 3 * 2**30}), conn=conn)
    started = time.monotonic()
    with pytest.raises(BakeError) as e:
        pull_one(st, Containerd(), image, threading.Event())
    msg = str(e.value)
    assert len(_calls(log, "ctr")) == 1, "a full disk must not be retried"
    assert time.monotonic() - started < 5
    assert "image registry.example/env/app:v1: the builder's disk is full" in msg
    assert "no space left on device" in msg
    assert "free on /var/lib/containerd: 0.50 GiB" in msg
    assert f"needs about {needed_bytes(3 * 2**30) / 2**30:.2f} GiB (3.00 GiB compressed) of a 24 GiB root volume" in msg
    assert "raise root_volume_size" in msg
    assert (log / "df.argv").read_text().split() == ["-P", "-B1", "/var/lib/containerd"]


def test_builder_disk_is_base_plus_unpacked_images_plus_headroom():
    from bake import disk

    plan = disk.builder_disk(20, [4 * 2**30, 2 * 2**30])
    unpacked = 6 * disk.UNPACK_FACTOR
    assert plan.gib == math.ceil((20 + unpacked) * (1 + disk.HEADROOM))
    assert plan.gib >= 20 + unpacked + disk.HEADROOM_MIN_GIB
    assert "base AMI 20 GiB + 2 image(s) 6.0 GiB compressed" in plan.reason
    small = disk.builder_disk(8, [10 * 2**20])
    assert small.gib == math.ceil(8 + 10 / 1024 * disk.UNPACK_FACTOR + disk.HEADROOM_MIN_GIB)  # the floor of headroom
    image = {"RootDeviceName": "/dev/xvda", "Architecture": "arm64",
             "BlockDeviceMappings": [{"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 100}},
                                     {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20}}]}
    assert Image(image).root_volume_gib == 20 and Image(image).platform_arch == "arm64"
