"""Fast snapshot restore's 5 snapshots per Region, counted at a rollout's apply (bake.fsr_quota):
the old AMI's restores and the new one's exist together while a rebake's apply runs."""

from __future__ import annotations

from bake.fsr_quota import QUOTA, FsrPool, peaks, refusal


def pool(name: str, snaps: int = 1, new_ami: bool = False, region: str = "us-east-1") -> FsrPool:
    return FsrPool(name, region, tuple(f"snap-{name}-{i}" for i in range(snaps)), new_ami)


def test_steady_pools_count_their_current_snapshots_only():
    pools = [pool(f"p{i}") for i in range(5)]
    assert [(p.region, p.count) for p in peaks(pools)] == [("us-east-1", 5)]
    assert refusal(pools) is None


def test_a_rebake_counts_old_and_new_snapshots_together():
    # Three pools of one snapshot each: 3 steady, but 6 while all three rebakes apply.
    steady = [pool(f"p{i}") for i in range(3)]
    assert peaks(steady)[0].count == 3 and refusal(steady) is None
    rebake = [pool(f"p{i}", new_ami=True) for i in range(3)]
    assert peaks(rebake)[0].count == 6
    why = refusal(rebake)
    assert why and f"at most {QUOTA} snapshots per Region" in why and "pools p0, p1, p2" in why
    assert "rebaking p0, p1, p2" in why and "--pool" in why
    # Two of them at a time fit: 3 held + 2 new.
    two = [pool("p0", new_ami=True), pool("p1", new_ami=True), pool("p2")]
    assert peaks(two)[0].count == 5 and refusal(two) is None


def test_six_first_bakes_in_one_region_exceed_and_regions_count_apart():
    six = [FsrPool(f"p{i}", "us-east-1", (), True) for i in range(6)]
    assert peaks(six)[0].count == 6
    assert "us-east-1: 6 snapshots" in (refusal(six) or "")
    apart = six[:3] + [FsrPool(f"q{i}", "eu-west-1", (), True) for i in range(3)]
    assert sorted((p.region, p.count) for p in peaks(apart)) == [("eu-west-1", 3), ("us-east-1", 3)]
    assert refusal(apart) is None


def test_an_ami_with_two_snapshots_counts_two_new_ones():
    pools = [pool("a", snaps=2, new_ami=True), pool("b")]
    assert peaks(pools)[0].count == 2 + 2 + 1
