"""``bake.decision.decide``: each case on plain data, no AWS."""

from __future__ import annotations

from bake.decision import decide
from bake.model.lock import LockEntry, Pin, PoolLock

FP = "sha256:" + "a" * 64
OLD = "sha256:" + "b" * 64


def entry(ami: str, fp: str = FP, region: str = "us-east-1", copies: dict[str, str] | None = None) -> LockEntry:
    return LockEntry(ami_id=ami, region=region, fingerprint=fp, base_ami="ami-base", images=[],
                     built_at="2026-11-01T00:00:00Z", runtime="containerd", copies=copies)


def pin(ami: str, fp: str) -> Pin:
    return Pin(ami_id=ami, reason="rollback", at="2026-11-02T00:00:00Z", fingerprint=fp)


def run(record: PoolLock, *, available: bool = True, by_tag: str | None = None, region: str = "us-east-1",
        missing: tuple[str, ...] = (), asked: list[str] | None = None):
    asked = [] if asked is None else asked

    def lock_ami_available() -> bool:
        asked.append("lock AMI")
        return available

    def ami_with_fingerprint() -> str | None:
        asked.append("fingerprint tag")
        return by_tag

    return decide("cpu", FP, region, record, lock_ami_available=lock_ami_available,
                  ami_with_fingerprint=ami_with_fingerprint, missing_copies=missing)


def test_aws_is_asked_only_what_the_decision_needs():
    asked: list[str] = []
    assert run(PoolLock(current=entry("ami-1"), pinned=pin("ami-0", FP)), asked=asked).action == "pinned"
    assert asked == []  # a pin holds on the lock alone
    assert run(PoolLock(current=entry("ami-1")), asked=asked).action == "skip"
    assert asked == ["lock AMI"]  # no DescribeImages by tag on a skip
    asked.clear()
    assert run(PoolLock(current=entry("ami-1", fp=OLD)), asked=asked).action == "bake"
    assert asked == ["fingerprint tag"]  # the lock's AMI has another fingerprint: not looked up


def test_new_pool_bakes():
    d = run(PoolLock(), available=False)
    assert (d.action, d.ami_id, d.reason) == ("bake", None, "new pool")


def test_same_fingerprint_and_available_lock_ami_skips():
    d = run(PoolLock(current=entry("ami-1")), by_tag="ami-other")
    assert (d.action, d.ami_id, d.copies) == ("skip", "ami-1", {})
    assert d.reason == "up to date: ami-1 has this fingerprint"


def test_current_ami_missing_a_distribute_region_is_copied_keeping_the_copies_it_has():
    record = PoolLock(current=entry("ami-1", copies={"eu-west-1": "ami-e1"}))
    d = run(record, by_tag="ami-1", missing=("us-west-2", "ap-south-1"))
    assert (d.action, d.ami_id, d.copies) == ("copy", "ami-1", {"eu-west-1": "ami-e1"})
    assert d.reason == "ami-1 is up to date but has no copy in us-west-2, ap-south-1 yet"


def test_skip_carries_the_lock_entrys_copies():
    d = run(PoolLock(current=entry("ami-1", copies={"eu-west-1": "ami-e1"})))
    assert (d.action, d.copies) == ("skip", {"eu-west-1": "ami-e1"})


def test_missing_copies_do_not_matter_when_the_ami_must_be_baked_or_is_pinned():
    gone = run(PoolLock(current=entry("ami-1")), available=False, missing=("us-west-2",))
    assert gone.action == "bake"
    changed = run(PoolLock(current=entry("ami-1", fp=OLD)), missing=("us-west-2",))
    assert changed.action == "bake"
    pinned = run(PoolLock(current=entry("ami-2", fp=OLD), pinned=pin("ami-1", FP)), missing=("us-west-2",))
    assert pinned.action == "pinned"


def test_changed_inputs_bake():
    d = run(PoolLock(current=entry("ami-1", fp=OLD)))
    assert (d.action, d.ami_id, d.reason) == ("bake", None, "base AMI, images or recipe changed")


def test_pin_with_this_fingerprint_holds_whatever_aws_says():
    record = PoolLock(current=entry("ami-2", fp=OLD), pinned=pin("ami-1", FP))
    d = run(record, available=False, by_tag="ami-9")
    assert (d.action, d.ami_id) == ("pinned", "ami-1")
    assert d.reason.startswith("pinned to ami-1 by rollback at 2026-11-02T00:00:00Z")
    assert "`python -m bake rollback cpu --unpin` releases it" in d.reason


def test_pin_lapses_when_the_fingerprint_changes():
    record = PoolLock(current=entry("ami-1", fp=OLD), pinned=pin("ami-1", OLD))
    d = run(record)
    assert d.action == "bake"
    assert d.reason == "base AMI, images or recipe changed; the pin on ami-1 lapses (the images changed since it was set)"


def test_lock_ami_gone_bakes_again_and_says_so():
    d = run(PoolLock(current=entry("ami-1")), available=False)
    assert (d.action, d.ami_id) == ("bake", None)
    assert d.reason == "the lock's ami-1 is no longer available"


def test_lock_ami_gone_but_another_ami_has_the_fingerprint_is_reused():
    d = run(PoolLock(current=entry("ami-1")), available=False, by_tag="ami-7")
    assert (d.action, d.ami_id) == ("reuse", "ami-7")
    assert d.reason == "ami-7 already has this fingerprint (tag bake:fingerprint); recording it"


def test_lost_lock_reuses_the_ami_found_by_its_fingerprint_tag():
    d = run(PoolLock(), available=False, by_tag="ami-7")
    assert (d.action, d.ami_id) == ("reuse", "ami-7")


def test_lock_entry_of_another_region_is_not_a_skip():
    d = run(PoolLock(current=entry("ami-1", region="eu-west-1")))
    assert (d.action, d.reason) == ("bake", "base AMI, images or recipe changed")
