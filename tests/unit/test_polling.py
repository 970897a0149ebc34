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


def test_slower_in_between_then_one_second_around_the_expected_time_and_half_a_second_at_it():
    s = PollSchedule(expected=40)
    assert s.interval(10) == 2.0
    assert s.interval(23.5) == 0.5  # shortened so as not to sleep past 24 s (0.6 x 40)
    assert s.interval(24) == s.interval(36.9) == s.interval(43) == s.interval(79) == 1.0
    assert s.interval(37.1) == s.interval(40) == s.interval(42.9) == 0.5  # within 3 s of 40 s


@pytest.mark.parametrize("name", ["instance_running", "instance_stopped", "instance_terminated"])
def test_a_change_within_seconds_of_its_usual_time_is_noticed_within_half_a_second(name):
    s = schedule_for(name)
    lags = [lag(s, EXPECTED[name] + d / 10) for d in range(-25, 26)]
    assert max(lags) <= 0.5 + 1e-9 and sum(lags) / len(lags) <= 0.3, lags


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


class FakeWaiter:
    """Stands in for a botocore waiter driven one attempt at a time: done after ``after`` s."""

    def __init__(self, after: float):
        import time

        self.done_at = time.monotonic() + after
        self.attempts = 0

    def wait(self, **kwargs):
        import time

        from botocore.exceptions import WaiterError

        self.attempts += 1
        if time.monotonic() < self.done_at:
            raise WaiterError(name="x", reason="Max attempts exceeded", last_response={})


class FakeClient:
    def __init__(self, waiter: FakeWaiter):
        self.waiter = waiter

    def get_waiter(self, name):
        return self.waiter


def test_wait_counts_its_calls_and_times_the_change():
    from bake import aws
    from bake.cancel import CancelToken

    waiter = FakeWaiter(after=1.2)
    stats = aws.wait(FakeClient(waiter), "instance_running", cancel=CancelToken(), timeout=10, delay=5, what="x")
    # Quick polls at 0, 0.5, 1.0, 1.5 s: noticed within half a second of the change.
    assert stats.calls == waiter.attempts == 4
    assert 1.2 <= stats.seconds < 1.8
    assert stats.as_data() == {"wait": "instance_running", "seconds": round(stats.seconds, 3), "calls": 4}


def test_wait_times_out_naming_the_setting_and_looks_once_more_at_the_deadline():
    from bake import aws
    from bake.cancel import CancelToken
    from bake.errors import BakeError

    waiter = FakeWaiter(after=60)
    with pytest.raises(BakeError, match=r"did not start: not done after 1s \(raise ssh_timeout in bake.toml\)"):
        aws.wait(FakeClient(waiter), "instance_running", cancel=CancelToken(), timeout=1.2, delay=5,
                 what="did not start", hint="raise ssh_timeout in bake.toml")
    assert waiter.attempts == 4  # 0, 0.5, 1.0 and the deadline itself (1.2 s)


def test_wait_is_cancelled_within_its_sleep():
    import threading
    import time

    from bake import aws
    from bake.cancel import CancelToken
    from bake.errors import Cancelled

    cancel = CancelToken()
    threading.Timer(3.3, cancel.cancel, args=(2,)).start()  # during a 2 s sleep of the far zone
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        aws.wait(FakeClient(FakeWaiter(after=600)), "image_available", cancel=cancel, timeout=600, delay=15, what="x")
    assert time.monotonic() - t0 < 3.6


def test_an_estimate_from_progress_moves_the_quick_polls_to_it():
    """``on_poll`` may say when the change will land (the AMI's snapshot progress does): the
    half-second polls then gather there, not at the generic expected time (40 s for an AMI)."""
    from bake import aws
    from bake.cancel import CancelToken

    seen: list[float] = []

    def estimate(elapsed: float) -> float:
        seen.append(elapsed)
        return 3.3

    waiter = FakeWaiter(after=3.2)
    stats = aws.wait(FakeClient(waiter), "image_available", cancel=CancelToken(), timeout=30, delay=15,
                     what="x", on_poll=estimate)
    # Without the estimate the far zone's 2 s pauses start at 3 s: the change at 3.2 s is seen at 5 s.
    assert stats.seconds < 3.2 + 0.6
    assert seen and all(b - a <= 0.6 for a, b in zip(seen, seen[1:]))


def test_eta_from_snapshot_progress():
    from bake.steps.ami import eta_from_progress

    assert eta_from_progress(10.0, 25) == 40.0  # the rate so far, carried on
    assert eta_from_progress(33.0, 100) == 33.0  # done: the AMI follows at once
    assert eta_from_progress(2.0, 4) is None  # too coarse to say
    assert eta_from_progress(2.0, 0) is None


class Recording:
    """A CancelToken stand-in that records the pauses instead of sleeping (time does not pass)."""

    def __init__(self):
        self.pauses: list[float] = []

    def check(self):
        pass

    def sleep(self, seconds: float):
        self.pauses.append(seconds)


def test_wait_until_returns_the_first_answer_and_counts_the_calls():
    from bake.polling import Every, WaitStats, wait_until

    answers = iter([None, None, "ready"])
    token, stats = Recording(), WaitStats("x")
    got = wait_until(lambda: next(answers), Every(0.2), token, timeout=10, on_timeout=lambda: "late", stats=stats)  # type: ignore[arg-type]
    assert got == "ready" and stats.calls == 3 and token.pauses == [0.2, 0.2]


def test_wait_until_gives_the_timeout_s_answer_and_looks_once_more_only_when_asked():
    import time

    from bake.polling import Every, wait_until

    calls: list[float] = []

    def never():
        calls.append(time.monotonic())
        return None

    assert wait_until(never, Every(0.2), None, timeout=0.5, on_timeout=lambda: "gave up") == "gave up"
    assert len(calls) == 3  # at 0, 0.2, 0.4 s: another pause would end past 0.5 s
    calls.clear()
    t0 = time.monotonic()
    assert wait_until(never, Every(0.2), None, timeout=0.5, on_timeout=lambda: "gave up", last_look=True) == "gave up"
    assert len(calls) == 4 and calls[-1] - t0 >= 0.5  # the last look is at the deadline itself
    calls.clear()
    assert wait_until(never, Every(10), None, timeout=0, on_timeout=lambda: None, last_look=True) is None
    assert len(calls) == 1  # a zero timeout is one look


def test_wait_until_lets_a_pending_hook_change_the_schedule_and_raises_what_on_timeout_raises():
    from bake.polling import Every, wait_until

    token = Recording()
    answers = iter([None, None, None, True])
    seen: list[float] = []

    def pending(elapsed: float):
        seen.append(elapsed)
        return Every(0.05)

    assert wait_until(lambda: next(answers), Every(0.3), token, timeout=10, on_timeout=lambda: False,  # type: ignore[arg-type]
                      on_pending=pending)
    assert token.pauses == [0.3, 0.05, 0.05] and len(seen) == 3

    class Gone(Exception):
        pass

    def expired():
        raise Gone("not done")

    with pytest.raises(Gone):
        wait_until(lambda: None, Every(0.01), None, timeout=0.02, on_timeout=expired)


def test_wait_until_is_cancelled_before_each_call():
    from bake.cancel import CancelToken
    from bake.errors import Cancelled
    from bake.polling import Every, wait_until

    token = CancelToken()
    token.cancel(15)
    calls: list[int] = []
    with pytest.raises(Cancelled):
        wait_until(lambda: calls.append(1), Every(0.01), token, timeout=5, on_timeout=lambda: None)
    assert calls == []
