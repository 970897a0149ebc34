"""When to ask again: the interval policy of every wait (instance states, SSH, AMI), and
``wait_until``, the one loop every wait runs (its deadline, its cancellation, its figures).

A fixed interval loses half of it on average after the state has changed (5 s polls lose
2.5 s). Polling every 0.2 s would notice at once but hammer the API for minutes on an AMI.
So the policy spends its calls where a change is likely: quick polls at first (moto, a reused
instance, an already-stopped builder), slower ones while the change is still far off, 1 s
polls from a little before the expected time to well after it (0.5 s within a few seconds of
it, where most changes land: EC2's instance transitions vary by little), then slower again up
to the caller's ceiling for the rare wait that runs long. Throttling is not handled here:
botocore's standard retry mode backs each call off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bake.cancel import CancelToken

T = TypeVar("T")

QUICK_FOR = 3.0  # seconds of quick polls at the start
QUICK = 0.5
FAR = 2.0  # interval while the expected time is still far off
NEAR = 1.0  # interval around the expected time: about 0.5 s of lag on average
NEAR_FROM = 0.6  # ... from this fraction of the expected time
NEAR_UNTIL = 2.0  # ... to this multiple of it
AT = 0.5  # interval within AT_WITHIN seconds of the expected time: about 0.25 s of lag
AT_WITHIN = 3.0
GROWTH = 0.1  # then +0.1 s of interval per second beyond, up to the ceiling


class Schedule(Protocol):
    def interval(self, elapsed: float) -> float:
        """Seconds to sleep after a poll made ``elapsed`` seconds into the wait."""
        ...


@dataclass(frozen=True)
class PollSchedule:
    expected: float  # seconds the change usually takes on EC2
    ceiling: float = 5.0  # the longest interval ever
    floor: float = QUICK  # ... unless the ceiling is below it: never a busy loop by accident

    def interval(self, elapsed: float) -> float:
        """Seconds to sleep after a poll made ``elapsed`` seconds into the wait."""
        if elapsed < QUICK_FOR:
            step = QUICK
        elif elapsed < NEAR_FROM * self.expected:
            # Never sleep past the start of the near zone.
            step = max(QUICK, min(FAR, NEAR_FROM * self.expected - elapsed))
        elif elapsed < NEAR_UNTIL * self.expected:
            step = AT if abs(elapsed - self.expected) < AT_WITHIN else NEAR
        else:
            step = NEAR + GROWTH * (elapsed - NEAR_UNTIL * self.expected)
        return min(step, max(self.ceiling, self.floor))


@dataclass(frozen=True)
class Every:
    """A fixed interval, for what has no usual time on EC2 (a console, a daemon on the builder)."""

    seconds: float

    def interval(self, elapsed: float) -> float:
        return self.seconds


# What each wait usually takes on EC2 (docs/ec2-timing.md gives the sources).
EXPECTED = {
    "instance_running": 17.0,
    "ssh_ready": 5.0,
    "instance_stopped": 11.0,
    "instance_terminated": 7.0,
    "image_available": 40.0,
    # A terminated instance's interface releasing its group: no figure is published, and moto
    # (like most clean-ups) answers at once; quick retries first, then the default's pace.
    "security_group_deletable": 10.0,
}


def schedule_for(what: str, ceiling: float = 5.0) -> PollSchedule:
    return PollSchedule(EXPECTED.get(what, 10.0), ceiling)


@dataclass
class WaitStats:
    """How long a wait took and how many polls (API calls, SSH attempts) it made: --json reports both."""

    name: str
    seconds: float = 0.0
    calls: int = 0

    def as_data(self) -> dict[str, Any]:
        return {"wait": self.name, "seconds": round(self.seconds, 3), "calls": self.calls}


def wait_until(
    probe: Callable[[], T | None],
    schedule: Schedule,
    cancel: CancelToken | None,
    *,
    timeout: float,
    on_timeout: Callable[[], T],
    stats: WaitStats | None = None,
    on_pending: Callable[[float], Schedule | None] | None = None,
    last_look: bool = False,
) -> T:
    """Call ``probe`` until it answers (anything but None), and return that answer.

    Between calls it sleeps as ``schedule`` says, through ``cancel`` (a Ctrl-C ends the wait
    within one interval; None: a wait nothing interrupts, as a step's undo needs). When the next
    pause would end past ``timeout`` it returns ``on_timeout()``, which raises (or gives the
    answer a wait that may run out has then); with ``last_look`` it first asks once more at the
    deadline itself. ``on_pending(elapsed)`` runs after each "not yet" that is followed by a
    pause (progress reports, a retry's message) and may return a better schedule for the rest.
    ``stats`` counts the calls and, on an answer, the seconds it took.
    """
    token = cancel or CancelToken()
    started = time.monotonic()
    deadline = started + timeout
    while True:
        token.check()
        if stats is not None:
            stats.calls += 1
        answer = probe()
        if answer is not None:
            if stats is not None:
                stats.seconds = time.monotonic() - started
            return answer
        now = time.monotonic()
        pause = schedule.interval(now - started)
        if now + pause > deadline:
            if not (last_look and now < deadline):
                return on_timeout()
            pause = deadline - now
        if on_pending and (better := on_pending(now - started)) is not None:
            schedule = better
        token.sleep(pause)
