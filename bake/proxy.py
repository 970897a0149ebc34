"""``ssh_proxy_command``'s process: a program (SSM Session Manager, EC2 Instance Connect, a relay)
that carries the SSH stream on its stdin and stdout, as OpenSSH's ProxyCommand. Its argv comes
from ``bake.model.proxy_command.expand``.

The proxy runs in its own session (process group) so that ``close`` ends it *and* what it started
(``aws ssm start-session`` runs ``session-manager-plugin``); it does not get the terminal's
SIGINT, so every exit path of a bake closes it, and an ``atexit`` hook closes any still open.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import tempfile
import threading
from select import select

from bake.lean_paramiko import paramiko

from bake.errors import BakeError
from bake.model.proxy_command import shown

STOP_GRACE = 3.0


class ProxyProcess(paramiko.ProxyCommand):
    """paramiko's ProxyCommand with an argv (no second split), its own process group, a
    ``recv`` that reports the proxy's end as EOF (paramiko's spins on it until a timeout, so a
    dead proxy was never seen as a lost connection), and a ``close`` that waits for the end."""

    def __init__(self, argv: list[str]):  # noqa: D107 - paramiko's __init__ would split a string
        self.cmd = argv
        self.stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0,
                start_new_session=True,
            )
        except OSError as e:
            self.stderr.close()
            raise BakeError(f"ssh_proxy_command: cannot start {argv[0]!r}: {e.strerror}") from None
        self.timeout = None
        self._closed_lock = threading.Lock()
        _live.add(self)

    def recv(self, size: int) -> bytes:
        r, _, _ = select([self.process.stdout], [], [], self.timeout)
        if not r:
            raise socket.timeout()
        try:
            return os.read(self.process.stdout.fileno(), size)  # b"" at the proxy's end: EOF
        except OSError as e:
            raise paramiko.ProxyCommandFailure(shown(self.cmd), e.strerror) from None

    def error_tail(self, n: int = 400) -> str:
        """What the proxy printed on stderr (for an error message)."""
        try:
            self.stderr.seek(0)
            return self.stderr.read().decode(errors="replace").strip()[-n:]
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        with self._closed_lock:
            if self.process.poll() is None:
                _signal_group(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    _signal_group(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            # The leader is gone; something it started (and that ignored SIGTERM) may not be.
            _signal_group(self.process.pid, signal.SIGKILL)
            for f in (self.process.stdin, self.process.stdout, self.stderr):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
            _live.discard(self)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_live: set[ProxyProcess] = set()


@atexit.register
def _close_all() -> None:
    for proxy in list(_live):
        proxy.close()
