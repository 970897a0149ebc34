"""Cooperative cancellation: SIGINT/SIGTERM set a token that every wait and step checks.

Signal handlers only record the signal; the work notices it at its next check and unwinds
through its cleanups (contextlib.ExitStack), so nothing is abandoned half-made.
"""

from __future__ import annotations

import threading

from bake.errors import Cancelled


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None
        self._cleanups: dict[int, str] = {}
        self._lock = threading.Lock()
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.signum or 2)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early (and raising Cancelled) when cancelled."""
        if self._event.wait(max(seconds, 0)):
            raise Cancelled(self.signum or 2)

    # What is being undone right now, so a second Ctrl-C can say what it is waiting for.
    def cleaning(self, what: str) -> int:
        with self._lock:
            self._next += 1
            self._cleanups[self._next] = what
            return self._next

    def cleaned(self, handle: int) -> None:
        with self._lock:
            self._cleanups.pop(handle, None)

    def pending_cleanups(self) -> list[str]:
        with self._lock:
            return list(self._cleanups.values())
