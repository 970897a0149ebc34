"""SSH to the builder, in the manner of Fabric: a lazy ``Connection``, a ``Result`` per
command, ``UnexpectedExit`` on a non-zero exit.

The user's own ~/.ssh (keys, agent, known_hosts, config) is never consulted: a bake logs in
only with its temporary in-memory key and checks the host key by its own policy.
"""

from __future__ import annotations

import shlex

import base64
import hashlib
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bake.lean_paramiko import paramiko

from bake.cancel import CancelToken
from bake.errors import BakeError
from bake.polling import Every, WaitStats, schedule_for, wait_until
from bake.proxy import ProxyProcess

OUTPUT_TAIL = 1500
SSH_RETRY_CEILING = 10.0  # the longest pause between SSH attempts


@dataclass(frozen=True)
class Result:
    command: str
    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0

    def tail(self, n: int = OUTPUT_TAIL) -> str:
        text = (self.stderr.strip() or self.stdout.strip())
        return text[-n:]


class UnexpectedExit(BakeError):
    def __init__(self, result: Result, shown_command: str | None = None):
        self.result = result
        cmd = shown_command or result.command
        super().__init__(f"command failed with exit code {result.exited}: {cmd}\n{result.tail()}")


class ConnectionLost(BakeError):
    """The SSH transport died while a command ran; the caller may reconnect and retry."""


def fingerprint_sha256(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyCheck(paramiko.MissingHostKeyPolicy):
    """Accept the server's key if it matches one of ``expected`` fingerprints; with none
    expected, trust it on first use (for this run only) and remember it for reconnects."""

    def __init__(self, expected: set[str] | None, on_trust: Callable[[str], None]):
        self.expected = expected
        self.on_trust = on_trust
        self.seen: str | None = None
        self.seen_key: paramiko.PKey | None = None  # for a kept builder's known_hosts

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        fp = fingerprint_sha256(key)
        if self.seen is not None:
            if fp != self.seen:
                raise paramiko.BadHostKeyException(hostname, key, key)
        elif self.expected is not None:
            if fp not in self.expected:
                raise BakeError(
                    f"host key {fp} of {hostname} is not among the fingerprints the instance "
                    f"printed on its console ({', '.join(sorted(self.expected))}): refusing to connect"
                )
        else:
            self.on_trust(fp)
        self.seen, self.seen_key = fp, key


class Connection:
    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        pkey: paramiko.PKey,
        host_key_check: HostKeyCheck,
        cancel: CancelToken,
        proxy: Callable[[], ProxyProcess] | None = None,
        log: Callable[[Result, str], None] | None = None,
        on_host: Callable[[str], str] | None = None,
    ):
        """``proxy`` starts a fresh ssh_proxy_command process per connection; ``log`` receives
        every command's result and shown form (the run directory's record); ``on_host`` rewrites
        every command before it is sent, so that root's commands reach the host through a
        builder's own path there (Bottlerocket's admin container: ``bake.bottlerocket.on_host``)."""
        self.host, self.port, self.user = host, port, user
        self.pkey = pkey
        self.host_key_check = host_key_check
        self.cancel = cancel
        self.proxy = proxy
        self.log = log
        self.on_host = on_host
        self._client: paramiko.SSHClient | None = None
        self._sock: ProxyProcess | socket.socket | None = None
        self._lock = threading.Lock()
        self._reconnecting = threading.Lock()

    def open(self, timeout: float, on_retry: Callable[[str], None] | None = None) -> WaitStats:
        """Connect, retrying until ``timeout``: sshd and cloud-init's key come up late.
        Attempts follow ``bake.polling`` (quick at first and while sshd usually comes up)."""
        stats = WaitStats("ssh_ready")
        last = ""

        def attempt() -> bool | None:
            nonlocal last
            try:
                self._connect_once()
                return True
            except BakeError:
                raise  # a host key mismatch is not going to fix itself
            except (OSError, paramiko.SSHException, EOFError) as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return None

        def expired() -> bool:
            if self.proxy:
                raise BakeError(
                    f"cannot reach {self.user}@{self.host}:{self.port} through ssh_proxy_command within "
                    f"{timeout:.0f}s (last error: {last}); check the proxy's own access (SSM agent and "
                    "instance profile, or the Instance Connect endpoint)"
                )
            raise BakeError(
                f"cannot reach {self.user}@{self.host}:{self.port} over SSH within {timeout:.0f}s "
                f"(last error: {last}); check ssh_host, ssh_cidrs and the subnet's route"
            )

        def retrying(elapsed: float) -> None:
            if on_retry:
                on_retry(last)

        wait_until(attempt, schedule_for("ssh_ready", ceiling=SSH_RETRY_CEILING), self.cancel, timeout=timeout,
                   on_timeout=expired, stats=stats, on_pending=retrying)
        return stats

    def _connect_once(self) -> None:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(self.host_key_check)
        sock: ProxyProcess | socket.socket = self.proxy() if self.proxy else self._tcp()
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=self.pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
                banner_timeout=15,
                auth_timeout=15,
                sock=sock,
            )
        except BaseException as e:
            client.close()
            said = sock.error_tail() if isinstance(sock, ProxyProcess) else ""
            sock.close()
            if said and isinstance(e, (OSError, paramiko.SSHException, EOFError)):
                raise paramiko.SSHException(f"{e or type(e).__name__} (the proxy said: {said})") from None
            raise
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(15)
        with self._lock:
            old, self._client = self._client, client
            old_sock, self._sock = self._sock, sock
        if old:
            old.close()
        if old_sock:
            old_sock.close()

    def _tcp(self) -> socket.socket:
        """The connection to sshd, without Nagle's algorithm: paramiko leaves it on, so each
        small SSH message (channel open, exec, EOF) waited for the builder's delayed ACK, 40 ms
        a command on Linux (measured on the sandbox: `true` took 44 ms, 2.5 ms without)."""
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    @property
    def alive(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    def _settled_alive(self, within: float = 1.0) -> bool:
        """Whether the transport is still up, once a dying one has had time to say so: paramiko
        closes its channels (a command then reads as "exited -1") a moment before it marks
        itself inactive, and a run that looked in between took a cut connection for a failed
        command (seen once in tests/faults' cut-mid-pull test)."""
        wait_until(lambda: (not self.alive) or None, Every(0.01), None, timeout=within, on_timeout=lambda: True)
        return self.alive

    def reconnect(self, timeout: float) -> None:
        """Open a new connection unless another thread already did (pulls run in parallel and
        all see the same drop: each reconnecting would close the others' new connection)."""
        with self._reconnecting:
            if self.alive:
                return
            self.open(timeout)

    def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        warn: bool = False,
        timeout: float = 3600,
        shown: str | None = None,
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> Result:
        """Run ``command``; raise UnexpectedExit on a non-zero exit unless ``warn``.

        ``on_stdout`` sees each chunk of standard output as it arrives (progress reports).

        ``stdin`` feeds secrets without putting them on a command line or a disk.
        ``shown`` is how the command appears in errors (defaults to the command).
        """
        if not self.alive:
            raise ConnectionLost(f"SSH connection to {self.host}:{self.port} is closed")
        assert self._client is not None
        if self.on_host:
            command = self.on_host(command)
        try:
            chan = self._client.get_transport().open_session(timeout=30)  # type: ignore[union-attr]
            chan.settimeout(1.0)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                if self.cancel.cancelled:
                    chan.close()
                    self.cancel.check()
                got = False
                while chan.recv_ready():
                    chunk = chan.recv(65536)
                    out += chunk
                    got = True
                    if on_stdout:
                        on_stdout(chunk)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    got = True
                # sshd sends the exit status as soon as the command is reaped, which can be before
                # the last of its output (still in the pipe) is sent: the end is the exit status
                # and the channel's EOF, with nothing left to read.
                if (chan.exit_status_ready() and (chan.eof_received or chan.closed)
                        and not chan.recv_ready() and not chan.recv_stderr_ready()):
                    break
                if chan.closed and not got:
                    # closed without an exit status: the transport went away
                    if not chan.exit_status_ready():
                        raise ConnectionLost(f"SSH channel closed while running: {shown or command}")
                if time.monotonic() > deadline:
                    chan.close()
                    raise BakeError(f"command timed out after {timeout:.0f}s: {shown or command}")
                if not got:
                    if chan.eof_received:
                        chan.status_event.wait(0.1)  # the output is done: the exit status (or close) is next
                    else:
                        select.select([chan], [], [], 0.1)  # output, its EOF or a close wakes it
            code = chan.recv_exit_status()
            chan.close()
            if code == -1 and not self._settled_alive():
                # paramiko reports a channel closed by a dying transport as "exited" with -1:
                # that is a lost connection, not the command's failure.
                raise ConnectionLost(f"SSH connection to {self.host}:{self.port} lost while running: {shown or command}")
        except (socket.error, paramiko.SSHException, EOFError) as e:
            raise ConnectionLost(f"SSH connection lost while running {shown or command}: {e}") from None
        result = Result(command, out.decode(errors="replace"), err.decode(errors="replace"), code)
        if self.log:
            self.log(result, shown or command)
        if code != 0 and not warn:
            raise UnexpectedExit(result, shown)
        return result

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            sock, self._sock = self._sock, None
        if client:
            client.close()
        if sock:
            sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CONSOLE_BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
CONSOLE_END = "-----END SSH HOST KEY FINGERPRINTS-----"


def console_fingerprints(console: str) -> set[str]:
    """SHA256 fingerprints from cloud-init's block in the console output.

    Lines look like ``256 SHA256:abc… root@ip-10-0-0-1 (ED25519)``.
    """
    found: set[str] = set()
    inside = False
    for line in console.splitlines():
        if CONSOLE_BEGIN in line:
            inside = True
            continue
        if CONSOLE_END in line:
            inside = False
            continue
        if inside:
            for word in line.split():
                if word.startswith("SHA256:"):
                    found.add(word)
    return found


def sudo(script: str) -> str:
    """``sudo -n sh -c SCRIPT``: -n fails at once instead of waiting for a password."""
    return f"sudo -n sh -c {shlex.quote(script)}"
