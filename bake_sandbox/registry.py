"""A real registry on loopback: Debian's ``docker-registry`` (distribution 2.8).

``LocalRegistry`` writes a small config (port, storage folder, optional TLS certificate and
htpasswd Basic auth), starts the registry and waits until ``/v2/`` answers. Tests use it as a
context manager; the sandbox starts it detached (own session, pid file, log file) so it
outlives the command that started it, and stops it later with ``stop_pidfile``.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from bake.errors import BakeError
from bake_sandbox.process import free_port

BINARY = "docker-registry"


class LocalRegistryError(BakeError):
    """The local registry could not be configured, started or stopped."""


def write_htpasswd(path: str | Path, user: str, password: str) -> Path:
    """Write a one-user bcrypt htpasswd file (``htpasswd -Bic``: the password goes on stdin)."""
    exe = shutil.which("htpasswd")
    if exe is None:
        raise LocalRegistryError("htpasswd is not installed (apt-get install apache2-utils)")
    path = Path(path)
    proc = subprocess.run(
        [exe, "-Bic", str(path), user], input=password, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise LocalRegistryError(f"htpasswd failed for {path}: {proc.stderr.strip()}")
    return path


class LocalRegistry:
    """One docker-registry process serving ``root/storage`` on ``host:port``.

    ``htpasswd`` is a file made by ``write_htpasswd``; ``tls`` is (certificate, key) PEM paths.
    """

    def __init__(
        self,
        root: str | Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        tls: tuple[str | Path, str | Path] | None = None,
        htpasswd: str | Path | None = None,
        realm: str = "bake-sandbox",
    ):
        self.root = Path(root)
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        self.htpasswd = Path(htpasswd) if htpasswd else None
        self.realm = realm
        self.config_path = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self.pid_path = self.root / "registry.pid"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT``, the registry part of an image reference."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def config(self) -> dict[str, object]:
        http: dict[str, object] = {
            "addr": f"{self.address}",
            # A fixed secret: without one each start makes a random one and warns about it.
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "storage")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": self.realm, "path": str(self.htpasswd)}}
        return config

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "storage").mkdir(exist_ok=True)
        # JSON is YAML: the registry's YAML parser reads it, and no YAML writer is needed.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        return self.config_path

    def start(self, detach: bool = False, timeout: float = 30) -> LocalRegistry:
        """Start the registry and wait for ``/v2/``. ``detach``: own session, pid file, survives us."""
        exe = shutil.which(BINARY)
        if exe is None:
            raise LocalRegistryError(f"{BINARY} is not installed (apt-get install docker-registry)")
        # Another server on the port would answer the readiness probe in this one's place.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As Go's listener does: connections of a previous run in TIME_WAIT do not block the
            # port, while a live listener still does (Linux refuses that bind even so).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port))
            except OSError as e:
                raise LocalRegistryError(f"cannot serve a registry on {self.address}: {e.strerror}") from None
        self.write_config()
        # REGISTRY_* variables override the config file; none of the caller's may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [exe, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=detach,
            )
        if detach:
            self.pid_path.write_text(f"{self.process.pid}\n")
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LocalRegistryError(
                    f"{BINARY} on {self.address} exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                status = self._probe()
                if status in (200, 401):
                    return
                last = f"HTTP {status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise LocalRegistryError(f"{BINARY} on {self.address} not ready after {timeout:.0f}s ({last}): {self.log_tail()}")

    def _probe(self) -> int:
        if self.tls:
            # A liveness probe, not a trust decision: the certificate is checked by the clients.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.host, self.port, timeout=2, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status
        finally:
            conn.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10) -> None:
        if self.process is None:
            return
        _terminate(self.process.pid, timeout, self.process)
        self.process = None
        self.pid_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalRegistry:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_pidfile(pid_path: str | Path, timeout: float = 10) -> bool:
    """Stop a registry started with ``detach=True`` by another process. False if none ran."""
    pid_path = Path(pid_path)
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    # The pid may have been reused since: only signal it if it is still the registry.
    alive = os.path.basename(exe).startswith(BINARY)
    if alive:
        _terminate(pid, timeout)
    pid_path.unlink(missing_ok=True)
    return alive


def _terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    def gone() -> bool:
        if process is not None:
            return process.poll() is not None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[0] == "Z"  # exited; its parent has yet to reap it

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if gone():
                return
            time.sleep(0.05)
    raise LocalRegistryError(f"{BINARY} (pid {pid}) did not exit")
