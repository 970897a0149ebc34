"""Planning asks AWS what ``bake.decision.decide`` needs (the lock AMI's state, the AMI with the
pool's fingerprint tag) and closes the registry client afterwards: in-process moto, with the
registry's answers stubbed (tests/registry resolves against real registries)."""

from __future__ import annotations

from bake import tags
from bake.build import Baker
from bake.model.config import load_config
from bake.model.lock import LockFile
from bake.progress import NullReporter
from bake.registry import RegistryClient
from bake.steps.record import entry_for, record


def test_plan_looks_up_the_decisions_facts_and_closes_the_registry(in_process_ec2, tmp_path, monkeypatch):
    ec2 = in_process_ec2
    closed: list[RegistryClient] = []
    monkeypatch.setattr(RegistryClient, "resolve_all", lambda self, refs, concurrency=8: [])
    monkeypatch.setattr(RegistryClient, "close", lambda self: closed.append(self))
    cfg = tmp_path / "bake.toml"
    cfg.write_text('region = "us-east-1"\n[pools.cpu]\nbase_ami = "ami-ekslinux"\nimages = ["quay.io/org/env:v1"]\n')
    lock = LockFile(tmp_path / "amis.lock.json")
    baker = Baker(load_config(cfg), lock, NullReporter())

    [plan] = baker.plan()
    assert (plan.action, plan.reason) == ("bake", "new pool")
    assert len(closed) == 1, "the registry client is closed once planning is done"

    # The lock was lost, but an AMI carries the pool's fingerprint tag: it is found and reused.
    iid = ec2.run_instances(ImageId="ami-ekslinux", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name="bake-cpu-t")["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=tags.as_aws(  # as a bake tags its AMI
        tags.run_tags("run-lost", "cpu", "ami", "2026-12-01T00:00:00Z", {tags.KEY_FINGERPRINT: plan.fingerprint})))
    [plan] = baker.plan()
    assert (plan.action, plan.ami_id) == ("reuse", ami)

    record(lock, "cpu", entry_for(plan, plan.existing))
    [plan] = baker.plan()
    assert (plan.action, plan.ami_id) == ("skip", ami)

    ec2.deregister_image(ImageId=ami)  # the lock's AMI is gone, and with it the tagged one
    [plan] = baker.plan()
    assert (plan.action, plan.ami_id, plan.reason) == ("bake", None, f"the lock's {ami} is no longer available")
    assert len(closed) == 4
