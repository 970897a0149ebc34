"""A moto server of one's own, on a free loopback port, for tests whose AWS state must not mix
with the sandbox's (prune and sweep look account-wide; the rollout tests create ASGs)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bake_sandbox.process import free_port


@contextmanager
def private_moto_server(log_dir: Path, timeout: float = 60, *, program: list[str] | None = None,
                        env: dict[str, str] | None = None) -> Iterator[str]:
    """Start moto_server (or ``program``, which takes moto_server's ``-H``/``-p``), wait until it
    answers, yield its URL, stop it."""
    port = free_port()
    log = Path(log_dir) / "moto.log"
    with open(log, "wb") as out:
        # Default: the sandbox's moto server (moto's own, plus what bake_sandbox.moto_server adds).
        default = [sys.executable, "-m", "bake_sandbox.moto_server"]
        proc = subprocess.Popen([*(program or default), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start; see {log}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
