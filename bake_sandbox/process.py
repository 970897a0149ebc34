"""Detached daemons with a pid file and a log file each, in the sandbox's run directory.

The CLI that starts a daemon exits right after ``up``, so each daemon runs in its own session
(no terminal's SIGINT or SIGHUP reaches it) and is found again through its pid file. A pid file
is trusted only while that pid is alive, not a zombie, and still runs the same program: pids are
reused, and killing a stranger's process would be far worse than starting a second daemon.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bake_sandbox.errors import SandboxError


def _alive(pid: int, program: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # The state letter follows the parenthesised command name; 'Z' is a zombie nobody reaped.
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return program is None or program.encode() in cmdline


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text) or "(empty log)"


@dataclass
class Daemon:
    """One long-running process of the sandbox.

    ``program`` is a string its command line must contain for a pid file to count as ours.
    """

    name: str
    argv: Sequence[str]
    run_dir: Path
    program: str
    env: dict[str, str] | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid, self.program) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> int:
        """Start the daemon unless ours already runs; return its pid."""
        pid = self.pid()
        if pid is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() signals the whole group
                    env=self.env,
                    cwd=self.run_dir,
                    close_fds=True,
                )
            except FileNotFoundError:
                raise SandboxError(f"{self.name}: {self.argv[0]} not found (run scripts/dev.sh setup)") from None
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail early with the log's tail if the daemon died."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            raise SandboxError(f"{self.name}: no pid file {self.pid_file}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            # Liveness only: right after exec, /proc/PID/cmdline can still show the parent's.
            if not _alive(pid, None):
                raise SandboxError(f"{self.name} exited before {what}; {self.log_file}:\n{log_tail(self.log_file)}")
            time.sleep(0.1)
        raise SandboxError(f"{self.name}: not {what} after {timeout:.0f}s; {self.log_file}:\n{log_tail(self.log_file)}")

    def stop(self, timeout: float = 10) -> bool:
        """SIGTERM the daemon's process group, SIGKILL it after ``timeout``. True if it ran."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, None):
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid, None):
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: its pgid is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect our own child's exit status (when this process started it), so it is not a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def run(argv: Sequence[str], what: str, timeout: float = 120, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a short command; raise SandboxError naming ``what`` with its output on failure."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    except FileNotFoundError:
        raise SandboxError(f"{what}: {argv[0]} not found (run scripts/dev.sh setup)") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{what}: {' '.join(argv)} did not finish within {timeout:.0f}s") from None
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise SandboxError(f"{what}: {' '.join(argv)} failed (exit {proc.returncode}): {out}")
    return proc.stdout
