"""A bake's run directory: the remote commands' output (credentials masked) and, after a failed
``build --keep-on-failure``, what it takes to log in to the builder that was left running.

``.bake-runs/RUN_ID/`` beside the lock file unless ``build --run-dir`` says otherwise; made
private (0700) on first use, named at the end of the run.

- ``POOL.remote.log``: every command run on the builder (as shown in messages, never its
  stdin), its exit code, stdout and stderr, masked by the reporter's secrets.
- ``POOL.key`` (0600, created once, never overwritten) and ``POOL.known_hosts``: only for a
  kept builder. The key pair is deleted by ``sweep``; the file is then useless.
- ``paramiko.log``: what paramiko logs while the run's builders are reached (a failed banner
  read is an ERROR with a traceback: with no handler, Python's last resort printed it on stderr).
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bake.errors import BakeError
from bake.model.times import iso_utc

if TYPE_CHECKING:
    from bake.ssh import Result
    from bake.steps.base import BuildState

DEFAULT_ROOT = ".bake-runs"


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def logger(self, st: BuildState) -> Any:
        """A ``Connection`` log hook that appends to ``POOL.remote.log``."""
        target = self.path / f"{st.plan.pool.name}.remote.log"

        def log(result: Result, shown: str) -> None:
            at = iso_utc()
            text = (f"=== {at} exit {result.exited}: {shown}\n"
                    f"--- stdout\n{result.stdout.rstrip()}\n--- stderr\n{result.stderr.rstrip()}\n")
            with self._lock:
                self._ensure()
                with open(target, "a", encoding="utf-8") as f:
                    f.write(st.run.reporter.redact(text))

        return log

    @contextmanager
    def captured(self, logger: str = "paramiko") -> Iterator[Path]:
        """While inside, ``logger``'s records (INFO and up) go to ``LOGGER.log`` here, not to
        stderr; the file (and the folder) is made only if something is logged."""
        target = self.path / f"{logger}.log"
        handler = _RunFileHandler(self, target)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log = logging.getLogger(logger)
        saved = (log.level, log.propagate)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            yield target
        finally:
            log.removeHandler(handler)
            log.setLevel(saved[0])
            log.propagate = saved[1]
            handler.close()

    def write_secret_once(self, name: str, text: str) -> Path:
        """Create ``name`` with mode 0600; refuse to overwrite (O_EXCL)."""
        self._ensure()
        path = self.path / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise BakeError(f"{path} already exists; not overwriting a private key") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def write(self, name: str, text: str) -> Path:
        self._ensure()
        path = self.path / name
        path.write_text(text, encoding="utf-8")
        return path

    def has_output(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())


class _RunFileHandler(logging.FileHandler):
    """A file handler that opens its file (making the run directory, 0700) on the first record."""

    def __init__(self, run_dir: RunDir, path: Path):
        self._run_dir = run_dir
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        self._run_dir._ensure()
        return super()._open()


def login_command(st: BuildState, host: str, port: int) -> str:
    """Write the kept builder's key (and host key, when one was seen) and return the ssh line."""
    assert st.run.dir is not None and st.private_key_pem
    alias = f"bake-{st.plan.pool.name}-builder"
    key = st.run.dir.write_secret_once(f"{st.plan.pool.name}.key", st.private_key_pem)
    opts = ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", f"HostKeyAlias={alias}"]
    seen = getattr(st.host_key_check, "seen_key", None)
    if seen is not None:
        known = st.run.dir.write(f"{st.plan.pool.name}.known_hosts", f"{alias} {seen.get_name()} {seen.get_base64()}\n")
        opts += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
    else:
        opts += ["-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=accept-new"]
    if st.proxy_argv:
        # ssh expands %-tokens in ProxyCommand itself: a literal % is written %%.
        opts += ["-o", "ProxyCommand=" + shlex.join(st.proxy_argv).replace("%", "%%")]
    if port != 22:
        opts += ["-p", str(port)]
    return shlex.join(["ssh", *opts, f"{st.plan.pool.ssh_user}@{host}"])
