"""A Bottlerocket builder (bake/bottlerocket.py): root's commands reach the host through the
admin container's `sudo sheltie`, the builder enables its admin container, Bottlerocket's own
data volume is snapshotted after the builder is stopped. The end-to-end proof, through a
sheltie stand-in that enters the host's mount namespace, is tests/e2e/test_bottlerocket_bake.py."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys

import pytest

from bake.bottlerocket import ADMIN_BASH, ADMIN_USER_DATA, on_host
from bake.build import steps_for
from bake.data_volume import DEVICE
from bake.model.config import PoolConfig
from bake.model.lock import LockFile
from bake.ssh import sudo
from bake.steps.data_volume import StepSnapshotDataVolume
from bake.steps.instance import StepRunInstance
from bake.steps.keypair import StepKeyPair
from bake.steps.security_group import StepSecurityGroup
from support.states import plan_for, state_for


def pool(**kw) -> PoolConfig:
    return PoolConfig(**{"name": "br", "base_ami": "ami-ekslinux", "images": ["python:3"], "os": "bottlerocket",
                         "cache": "data-volume", "ssh_cidrs": ["203.0.113.7/32"], **kw})


def test_a_script_as_root_runs_under_the_admin_containers_bash_in_the_hosts_namespaces():
    script = "exec ctr -n k8s.io images ls 'name==a b'"
    got = on_host(sudo(script))
    assert got == f"sudo -n sheltie {ADMIN_BASH} -c {shlex.quote(script)}"
    # the script still reaches bash as one word, quoted as sudo() quoted it
    assert shlex.split(got.replace("$$", "1"))[-1] == script
    assert on_host("sudo -n sh -s") == f"sudo -n sheltie {ADMIN_BASH} -s"  # the script on stdin


def test_a_program_as_root_is_the_hosts_and_other_commands_stay_in_the_admin_container():
    assert on_host("sudo -n python3 -I -S - /run/containerd/containerd.sock") == \
        "sudo -n sheltie python3 -I -S - /run/containerd/containerd.sock"
    assert on_host("df -P -B1 /var/lib/containerd") == "df -P -B1 /var/lib/containerd"
    assert on_host("sudo -nx") == "sudo -nx"  # not the prefix: left alone


def test_the_rewritten_command_runs_through_a_shell_as_sheltie_gets_it(tmp_path):
    """The rewritten line goes through a real bash as sshd would run it, with `sudo` and `sheltie`
    stand-ins that record their arguments: $$ is the session shell's pid, the script one word."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "argv"
    (bin_ / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_ / "sheltie").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    line = on_host(sudo("echo 'it''s' $((1+1))"))
    p = subprocess.run(["bash", "-c", f"echo $$; {line}"], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}, timeout=30)
    assert p.returncode == 0, p.stderr
    shell_pid = p.stdout.split()[0]
    bash, flag, script = log.read_text().splitlines()
    assert bash == f"/proc/{shell_pid}/root/opt/bin/bash" and (flag, script) == ("-c", "echo 'it''s' $((1+1))")


def test_the_steps_mount_nothing_and_stop_the_builder_before_the_snapshot(tmp_path):
    steps = steps_for(pool(), LockFile(tmp_path / "l.json"))
    names = [s.name for s in steps]
    assert "data-volume" not in names  # Bottlerocket formats and mounts /dev/xvdb itself
    assert names[-4:] == ["cache-snapshot", "cache-copies", "cache-share", "lock"] and not {"scrub", "ami"} & set(names)
    assert names.index("runtime") < names.index("kubelet") < names.index("pull")  # its image GC stopped before the pulls
    snapshot = steps[names.index("cache-snapshot")]
    assert snapshot.stop_builder is True
    al2023 = steps_for(pool(os="al2023"), LockFile(tmp_path / "l.json"))
    al2023_names = [s.name for s in al2023]
    assert "data-volume" in al2023_names and "kubelet" not in al2023_names
    assert al2023[al2023_names.index("cache-snapshot")].stop_builder is False


def test_the_builder_enables_its_admin_container_and_its_stopped_data_volume_is_snapshotted(in_process_ec2):
    st = state_for(plan_for(pool()), in_process_ec2)
    for step in (StepKeyPair(), StepSecurityGroup(), StepRunInstance()):
        step.run(st)
    try:
        got = in_process_ec2.describe_instance_attribute(InstanceId=st.instance_id, Attribute="userData")
        assert base64.b64decode(got["UserData"]["Value"]).decode() == ADMIN_USER_DATA
        StepSnapshotDataVolume(stop_builder=True).run(st)
        inst = in_process_ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
        assert inst["State"]["Name"] == "stopped"
        data = next(m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"] if m["DeviceName"] == DEVICE)
        snap = in_process_ec2.describe_snapshots(SnapshotIds=[st.record.cache_snapshot_id])["Snapshots"][0]
        assert snap["VolumeId"] == data == st.data_volume_id and st.record.ami_id == snap["SnapshotId"]
    finally:
        StepRunInstance().cleanup(st)
        StepSecurityGroup().cleanup(st)
        StepKeyPair().cleanup(st)


def test_an_al2023_builder_gets_no_user_data(in_process_ec2):
    st = state_for(plan_for(pool(os="al2023")), in_process_ec2)
    for step in (StepKeyPair(), StepSecurityGroup(), StepRunInstance()):
        step.run(st)
    try:
        got = in_process_ec2.describe_instance_attribute(InstanceId=st.instance_id, Attribute="userData")
        assert "Value" not in got.get("UserData", {})
    finally:
        StepRunInstance().cleanup(st)


@pytest.mark.parametrize("command", ["plan", "build"])
def test_a_bottlerocket_gpu_pool_is_refused_before_any_aws_call(command, tmp_path):
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.br]\nbase_ami = "ami-0123456789abcdef0"\nimages = ["nginx:1.27"]\n'
                   'os = "bottlerocket"\ncache = "data-volume"\nlaunch = "none"\ngpu = true\ninstance_type = "g5.xlarge"\n')
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_MAX_ATTEMPTS": "1"}
    p = subprocess.run([sys.executable, "-m", "bake", command, "--config", str(cfg)], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert f"{cfg}: pools.br.gpu: the GPU steps are written for AL2023" in p.stderr
    assert not (tmp_path / "amis.lock.json").exists()



def test_the_sandboxs_boot_stand_in_knows_a_bottlerocket_builder_by_the_user_data_moto_keeps():
    from moto.core.types import Base64EncodedString

    from bake_sandbox.bottlerocket import is_bottlerocket

    def encoded(text: str) -> Base64EncodedString:
        return Base64EncodedString(base64.b64encode(text.encode()).decode())

    assert is_bottlerocket(encoded(ADMIN_USER_DATA)) and is_bottlerocket([encoded(ADMIN_USER_DATA)])
    assert not is_bottlerocket(encoded("#!/bin/sh\necho hi\n")) and not is_bottlerocket(None)
