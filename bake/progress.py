"""Progress events and where they go: a live display, timestamped lines, or JSON lines.

Library code only calls ``reporter.emit(...)``; the CLI picks the sink. Every sink masks the
secrets registered with ``add_secret`` (registry passwords, tokens) before anything is written.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from bake.model.times import iso_utc

MASK = "***"
PLAIN_PROGRESS_EVERY = 10.0


@dataclass
class Event:
    kind: str  # run.start | pool.start | step | wait | image | pool.done | pool.skip | pool.fail | cleanup | warn | run.done
    message: str
    pool: str | None = None
    step: str | None = None
    image: str | None = None
    status: str | None = None  # started | done | failed | skipped | retry | progress
    data: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=lambda: iso_utc(timespec="milliseconds"))


class Reporter:
    """Base sink: redaction and thread safety. Subclasses implement ``_write``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self.events: list[Event] = []  # kept for summaries and tests

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, MASK)
        return text

    def emit(self, kind: str, message: str, **kw: Any) -> None:
        with self._lock:
            ev = Event(kind=kind, message=self.redact(message), **kw)
            if ev.data:
                ev.data = json.loads(self.redact(json.dumps(ev.data)))
            self.events.append(ev)
            self._write(ev)

    def _write(self, ev: Event) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainReporter(Reporter):
    """Timestamped lines, for logs and CI. Progress lines of one image or step come at most
    every PLAIN_PROGRESS_EVERY seconds: a log is read later, not watched."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        self.stream = stream or sys.stderr
        self._shown: dict[tuple[str | None, str | None, str | None], float] = {}

    def _write(self, ev: Event) -> None:
        if ev.status == "progress":
            key, now = (ev.pool, ev.image, ev.step), time.monotonic()
            if now - self._shown.get(key, -PLAIN_PROGRESS_EVERY) < PLAIN_PROGRESS_EVERY:
                return
            self._shown[key] = now
        where = f"[{ev.pool}]" if ev.pool else "[bake]"
        image = f" {ev.image}:" if ev.image else ""
        self.stream.write(f"{ev.time} {where}{image} {ev.message}\n")
        self.stream.flush()


class JsonReporter(Reporter):
    """One JSON object per line on stdout: an event stream for pipelines."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        self.stream = stream or sys.stdout

    def _write(self, ev: Event) -> None:
        self.stream.write(json.dumps({k: v for k, v in asdict(ev).items() if v not in (None, {})}) + "\n")
        self.stream.flush()


class NullReporter(Reporter):
    def _write(self, ev: Event) -> None:
        pass


class LiveReporter(Reporter):
    """A live table on a terminal: one row per pool, one per image being pulled."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream or sys.stderr)
        self._pools: dict[str, str] = {}
        self._images: dict[tuple[str, str], str] = {}
        self._live = Live(self._render(), console=self._console, refresh_per_second=8, transient=False)
        self._live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", expand=False, box=None)
        table.add_column("pool")
        table.add_column("image")
        table.add_column("status")
        for pool, status in self._pools.items():
            table.add_row(pool, "", status)
            for (p, image), st in self._images.items():
                if p == pool:
                    table.add_row("", image, st)
        return table

    def _write(self, ev: Event) -> None:
        if ev.pool:
            if ev.image:
                self._images[(ev.pool, ev.image)] = ev.message
            else:
                self._pools[ev.pool] = ev.message
        elif ev.kind in ("warn", "run.done", "run.dir"):
            self._console.print(ev.message)
        self._live.update(self._render())

    def close(self) -> None:
        self._live.stop()


def make_reporter(json_mode: bool, stream: TextIO | None = None) -> Reporter:
    if json_mode:
        return JsonReporter()
    err = stream or sys.stderr
    if err.isatty():
        return LiveReporter(err)
    return PlainReporter(err)
