"""Real-account readiness in the sandbox: SSH through ``ssh_proxy_command`` with an unreachable
``ssh_host`` (the sandbox's relay stands in for SSM's AWS-StartSSHSession), no inbound rule, no
proxy left after success, failure or SIGINT; ``build --keep-on-failure`` leaves exactly the
builder, group and key pair, reachable with the printed command, and ``sweep --yes`` removes them."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

from bake.disk import HEADROOM_MIN_GIB, builder_disk
from faultkit import assert_nothing_left, closed_port, leftovers_of, step_started
from support.sandbox_bakes import fresh_image
from support.cli import run_bake

pytestmark = [pytest.mark.sandbox, pytest.mark.faults, pytest.mark.timeout(240)]

RELAY = f"{sys.executable} -m bake sandbox relay --target %i"


def _proxied_config(pool_config, **extra) -> Path:
    """A pool reached only through the relay: ssh_host names a closed port, no ssh_cidrs."""
    cfg = pool_config(ssh_host=f"127.0.0.1:{closed_port()}", ssh_proxy_command=RELAY, **extra)
    text = "\n".join(line for line in cfg.read_text().splitlines() if not line.startswith("ssh_cidrs"))
    cfg.write_text(text + "\n")
    return cfg


def _relays(instance_id: str | None = None) -> list[int]:
    """Processes running the sandbox relay (for one instance), by /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"relay" in argv and b"--target" in argv and (
                instance_id is None or instance_id.encode() in argv):
            found.append(int(entry.name))
    return found


def _instance_of(run) -> str:
    launched = next(e["message"] for e in run.events if e.get("step") == "instance" and "launched" in e.get("message", ""))
    return launched.split()[1]


def _no_relay_left(instance_id: str) -> None:
    deadline = time.monotonic() + 3
    while pids := _relays(instance_id):
        assert time.monotonic() < deadline, f"proxy processes outlived the bake: {pids}"
        time.sleep(0.1)


def _manifest(sandbox, ref: str) -> dict:
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    return requests.get(f"https://{sandbox.info.registry}/v2/{repo}/manifests/{tag}", timeout=10,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                        verify=str(sandbox.info.ca_cert)).json()


def _break_image(sandbox, ref: str) -> None:
    """Remove the image's layer blob from the registry's storage: resolving works, the pull fails."""
    manifest = _manifest(sandbox, ref)
    blobs = sandbox.layout.registry_dir / "sample" / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for layer in manifest["layers"]:
        hexd = layer["digest"].split(":", 1)[1]
        (blobs / hexd[:2] / hexd / "data").unlink()


def test_bake_through_the_proxy_command_admits_nothing_inbound_and_ends_the_proxy(sandbox, ec2, bake, proxy, pool_config):
    cfg = _proxied_config(pool_config)
    planned = run_bake("plan", "--config", str(cfg), "--json", env=sandbox.env())
    assert planned.returncode == 0, planned.stderr
    disk = json.loads(planned.stdout)["pools"][0]["builder_disk"]
    manifest = _manifest(sandbox, json.loads(planned.stdout)["pools"][0]["images"][0]["ref"])
    assert disk["base_gib"] == 15  # the sandbox's base AMI
    assert disk["compressed_bytes"] == sum(x["size"] for x in manifest["layers"]) + manifest["config"]["size"]
    assert disk["gib"] == builder_disk(15, [disk["compressed_bytes"]]).gib >= 15 + HEADROOM_MIN_GIB
    text = run_bake("plan", "--config", str(cfg), env=sandbox.env()).stdout
    assert f"builder disk {disk['gib']} GiB = base AMI 15 GiB + 1 image(s)" in text, text
    run = bake("--config", str(cfg))
    assert run.finish() == 0, run.stderr + run.stdout
    connected = next(e["message"] for e in run.events if e.get("step") == "connect" and "connected" in e.get("message", ""))
    assert "through" in connected and "sandbox relay --target i-" in connected, connected
    assert proxy.calls_to("CreateSecurityGroup"), "a group is still made (the instance needs one)"
    assert proxy.calls_to("AuthorizeSecurityGroupIngress") == [], "ssh_proxy_command: nothing may be admitted"
    assert any("admits nothing inbound" in e.get("message", "") for e in run.events)
    launch = proxy.calls_to("RunInstances")[-1].params
    assert launch["BlockDeviceMapping.1.Ebs.VolumeSize"] == str(disk["gib"]), launch
    _no_relay_left(_instance_of(run))
    assert_nothing_left(ec2, run, succeeded=True)
    # every bake keeps its remote output, named at the end
    run_dir = Path(next(e["data"]["run_dir"] for e in run.events if e.get("kind") == "run.dir"))
    log = (run_dir / "cpu.remote.log").read_text()
    assert "exit 0: ctr images pull" in log

    # asg:NAME naming this bake's AMI: plan warns and names the base it was baked on
    ami = next(e["data"]["ami_id"] for e in run.events if e.get("kind") == "pool.done")
    asg_name = f"faults-baked-{ami}"
    lt = ec2.create_launch_template(LaunchTemplateName=asg_name, LaunchTemplateData={"ImageId": ami})
    autoscaling = boto3.client("autoscaling", endpoint_url=sandbox.info.moto_endpoint, region_name="us-east-1")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=asg_name, MinSize=0, MaxSize=1, AvailabilityZones=["us-east-1a"],
                                          LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"]})
    try:
        cfg.write_text(cfg.read_text().replace('base_ami = "ssm:', f'base_ami = "asg:{asg_name}"\n# was "ssm:'))
        text = run_bake("plan", "--config", str(cfg), env=sandbox.env())
        assert text.returncode == 0, text.stderr
        assert f"WARNING      pool cpu: base_ami = 'asg:{asg_name}' resolves to {ami}, which this tool baked" in text.stdout
        assert f"Use the EKS AMI it was baked on, base_ami = '{sandbox.info.base_ami}'" in text.stdout, text.stdout
    finally:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=asg_name, ForceDelete=True)
        ec2.delete_launch_template(LaunchTemplateName=asg_name)


def test_proxy_ends_after_a_failure_and_after_sigint(sandbox, ec2, bake, proxy, pool_config):
    image = fresh_image(sandbox)
    cfg = _proxied_config(pool_config, images=[image], pull_retries=0)
    _break_image(sandbox, image)
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    assert any("could not be pulled" in e.get("message", "") for e in run.events if e.get("kind") == "pool.fail")
    _no_relay_left(_instance_of(run))
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")

    cfg = _proxied_config(pool_config, name="sigint.toml")
    run = bake("--config", str(cfg))
    run.wait_event(step_started("pull"), timeout=90)
    instance = _instance_of(run)
    assert _relays(instance), "the relay should be running while connected"
    run.send(signal.SIGINT)
    assert run.finish() == 130, run.stderr
    _no_relay_left(instance)
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")


def test_keep_on_failure_leaves_a_reachable_builder_that_sweep_removes(sandbox, ec2, bake, proxy, pool_config, tmp_path):
    image = fresh_image(sandbox)
    cfg = pool_config(images=[image], pull_retries=0)
    _break_image(sandbox, image)
    run = bake("--config", str(cfg), "--keep-on-failure")
    assert run.finish() == 1, run.stderr
    try:
        kept = next(e for e in run.events if e.get("status") == "kept")
        left = leftovers_of(ec2, run.run_id)
        assert left == {"instances": [kept["data"]["instance_id"]], "security_groups": [kept["data"]["security_group_id"]],
                        "key_pairs": [kept["data"]["key_name"]]}
        run_dir = Path(kept["data"]["run_dir"])
        key = run_dir / "cpu.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert [p.name for p in run_dir.glob("*.key")] == ["cpu.key"]
        # the printed command logs in (BatchMode: no prompt can hang the test)
        ssh = shlex.split(kept["data"]["ssh"])
        out = subprocess.run([ssh[0], "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *ssh[1:], "echo", "on-the-builder"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "on-the-builder" in out.stdout, out.stderr
        assert "exit 1: ctr images pull" in (run_dir / "cpu.remote.log").read_text()
    finally:
        swept = run_bake("sweep", "--yes", "--config", str(cfg), env=sandbox.env(), timeout=180)
    assert swept.returncode == 0, swept.stderr + swept.stdout
    assert leftovers_of(ec2, run.run_id) == {"instances": [], "security_groups": [], "key_pairs": []}

    # without the flag, the same failure leaves nothing
    image = fresh_image(sandbox)
    cfg = pool_config(images=[image], pull_retries=0, name="nokeep.toml")
    _break_image(sandbox, image)
    run = bake("--config", str(cfg))
    assert run.finish() == 1, run.stderr
    assert not any(e.get("status") == "kept" for e in run.events)
    assert_nothing_left(ec2, run, cfg.parent / "amis.lock.json")
    this_run = cfg.parent / ".bake-runs" / run.run_id
    assert (this_run / "cpu.remote.log").exists()
    assert not list(this_run.glob("*.key")), "a key file without --keep-on-failure"


@pytest.mark.slow
def test_a_dying_proxy_is_a_lost_connection_and_the_pull_reconnects(sandbox, ec2, bake, proxy, pool_config, big_image):
    big = big_image(200)
    cfg = _proxied_config(pool_config, images=[big], pull_retries=3)
    run = bake("--config", str(cfg), timeout=180)
    run.wait_event(lambda e: e.get("kind") == "image" and e.get("image") == big and e.get("status") == "started",
                   timeout=120)
    instance = _instance_of(run)
    pids = _relays(instance)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)  # the bake's own proxy process, by its id
    assert run.finish() == 0, run.stderr + run.stdout
    retries = [e for e in run.events if e.get("kind") == "image" and e.get("status") == "retry"]
    assert retries and any("SSH" in e["message"] for e in retries), run.events
    _no_relay_left(instance)
    assert_nothing_left(ec2, run, succeeded=True)
