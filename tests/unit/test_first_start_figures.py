"""The first-read figures plan and review print (bake/first_start.py), against AWS's published
formula and examples (docs/first-start.md gives the pages)."""

from __future__ import annotations

import pytest

from bake.first_start import GIB, FirstRead


def test_credit_bucket_follows_aws_formula_and_examples():
    # "a snapshot with a size of 128 GiB": 8 credits an hour, a bucket of 8
    fr = FirstRead("p", None, ("us-east-1a",), True, snapshot_gib=128, snapshots=1)
    assert (fr.credit_bucket, fr.credits_per_hour) == (8, 8)
    # FAQ: "a 100 GiB FSR-enabled snapshot will have the maximum balance of 10 credits"
    assert FirstRead("p", None, ("us-east-1a",), True, snapshot_gib=100).credit_bucket == 10
    # FAQ: "A 4 TiB snapshot will have a maximum balance of 1 with a fill rate of 1 credit every 4 hours"
    big = FirstRead("p", None, ("us-east-1a",), True, snapshot_gib=4096)
    assert (big.credit_bucket, big.credits_per_hour) == (1, 0.25)


def test_cost_time_and_strategy_lines():
    fr = FirstRead("p", 200, ("us-east-1a", "us-east-1b"), False, cache_bytes=10 * GIB, snapshot_gib=20, snapshots=1)
    assert fr.fsr_monthly_usd == pytest.approx(2 * 730 * 0.75)
    assert fr.seconds_to_initialize(fr.cache_bytes) == pytest.approx(51.2)
    text = "\n".join(fr.lines())
    assert "fast snapshot restore, provisioned initialization rate 200 MiB/s" in text
    assert "the cache's size takes 51 s, the whole volume at most 102 s" in text
    assert "credit bucket 10.0 volume(s), refilled 10.0/hour" in text
    assert "$1,095/month" in text
    # AWS: with both, the volume is initialized at the rate instead of fast snapshot restore
    assert "warning: both volume_initialization_rate and fast_snapshot_restore" in text
    alone = FirstRead("p", None, ("us-east-1a",), True, cache_bytes=GIB, snapshot_gib=20, snapshots=2)
    assert not [line for line in alone.lines() if line.startswith("warning")]


def test_no_strategy_warns_that_nodes_read_lazily():
    fr = FirstRead("p", None, (), True, cache_bytes=3 * GIB)
    assert fr.lazy
    assert any(line.startswith("warning: no volume_initialization_rate and no fast_snapshot_restore") for line in fr.lines())
