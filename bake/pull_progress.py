"""Bytes done, total and rate of one ``ctr images pull``, read from its progress output.

containerd 1.x's ctr redraws a table about every 100 ms: a line per blob (``layer-sha256:…:
downloading |+++   | 1.2 MiB/3.2 MiB``, or ``done``/``exists``) and a last line ``elapsed: 7.7 s
total: 25.4 M (3.3 MiB/s)``. containerd 2.x's pulls through the transfer service and prints a
tree instead (``layer (2cbb29884282)  downloading |+++ | 93.0 MiB/200.0 MiB``) under a line
``Pulling from OCI Registry (REF)  elapsed: 0.3 s  total: 93.0 M (287.3 MiB/s)``
(tests/unit/data/ctr-2.1.9-pull.txt is one, recorded here). The total of the image is the sum
of its blobs' sizes as ctr lists them (a layer's size shows from its first byte), so it can
still grow during the first second of a pull. 2.1.9 prints the finished total without its unit
("total: 200.0" for 200 MiB): bytes done never go backwards here, and a layer marked complete
counts whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SIZE = r"([\d.]+)\s*([KMGT]?)i?B?"
TOTAL = re.compile(rf"total:\s*{SIZE}\s*\({SIZE}/s\)")
BLOB = re.compile(rf"(layer-sha256:[0-9a-f]+:|layer \([0-9a-f]+\))\s+\w+[^\n]*?{SIZE}/{SIZE}")
COMPLETE = re.compile(r"(layer \([0-9a-f]+\))\s+complete\b")
ESCAPES = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * UNITS[unit])


@dataclass
class PullProgress:
    done: int = 0  # bytes fetched so far
    total: int | None = None  # the layers' sizes, once ctr lists them
    rate: float = 0.0  # bytes per second, ctr's own average


class CtrProgressParser:
    """Feed it ctr's stdout chunks; ``progress`` is the latest state, None before any."""

    def __init__(self) -> None:
        self._tail = ""
        self._sizes: dict[str, int] = {}
        self.progress: PullProgress | None = None

    def feed(self, chunk: bytes) -> PullProgress | None:
        text = self._tail + ESCAPES.sub(b"", chunk).decode(errors="replace")
        for blob, _, _, number, unit in BLOB.findall(text):
            self._sizes[blob] = _bytes(number, unit)
        complete = sum(self._sizes.get(blob, 0) for blob in set(COMPLETE.findall(text)))
        totals = TOTAL.findall(text)
        if totals:
            done_n, done_u, rate_n, rate_u = totals[-1]
            before = self.progress.done if self.progress else 0
            done = max(_bytes(done_n, done_u), complete, before)
            self.progress = PullProgress(done, sum(self._sizes.values()) or None, float(_bytes(rate_n, rate_u)))
        self._tail = text[-4096:]  # a table split across chunks is read whole next time
        return self.progress


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover
