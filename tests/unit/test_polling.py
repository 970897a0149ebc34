"""The wait policy (bake.polling): quick at first and around the expected time, slower in
between and after, never above the ceiling; and what it costs: a change at the expected
time is noticed within about half a second, with a bounded number of calls."""

from __future__ import annotations

import pytest

from bake.polling import EXPECTED, PollSchedule, schedule_for


def polls(schedule: PollSchedule, until: float) -> list[float]:
    """The times at which a wait polls, from 0 until ``until`` (polls take no time here)."""
    t, out = 0.0, []
    while t <= until:
        out.append(t)
        t += schedule.interval(t)
    return out


def lag(schedule: PollSchedule, change_at: float) -> float:
    return next(t for t in polls(schedule, change_at + 60) if t >= change_at) - change_at


def test_quick_polls_first():
    s = PollSchedule(expected=40)
    assert [s.interval(t) for t in (0, 1, 2.9)] == [0.5, 0.5, 0.5]


def test_slower_in_between_then_one_second_around_the_expected_time():
    s = PollSchedule(expected=40)
    assert s.interval(10) == 2.0
    assert s.interval(23.5) == 0.5  # shortened so as not to sleep past 24 s (0.6 x 40)
    assert s.interval(24) == s.interval(40) == s.interval(79) == 1.0


def test_slower_again_long_after_and_never_above_the_ceiling():
    s = PollSchedule(expected=10, ceiling=5)
    assert 1.0 < s.interval(40) < s.interval(60) <= 5.0
    assert s.interval(3600) == 5.0
    assert PollSchedule(expected=10, ceiling=0.1).interval(0) == 0.5  # a floor: never a busy loop


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_change_at_its_usual_time_is_noticed_within_a_second(name):
    s = schedule_for(name)
    lags = [lag(s, EXPECTED[name] * f) for f in (0.7, 0.85, 1.0, 1.15, 1.3, 1.6)]
    assert max(lags) <= 1.0 + 1e-9 and sum(lags) / len(lags) <= 0.6, lags


def test_any_change_within_the_first_minute_is_noticed_within_two_seconds_without_hammering():
    s = schedule_for("image_available")
    lags = [lag(s, t / 4) for t in range(0, 240)]
    assert max(lags) <= 2.0 + 1e-9 and sum(lags) / len(lags) <= 1.0
    assert len(polls(s, 60)) <= 60  # at most one call a second on average


def test_an_unknown_wait_gets_a_default_expectation():
    assert schedule_for("something_else").expected > 0
