"""A test double of ``bake.ssh.Connection.run``: the builder's commands run by a local ``sh``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from bake.ssh import Result, UnexpectedExit


class LocalShell:
    """Connection.run's contract (stdin, warn, timeout, the on_stdout hook), executed locally
    with ``env`` (None: this process's). Every command is kept in ``commands``."""

    cancel = None  # Connection.cancel: nothing interrupts a local shell's waits

    def __init__(self, env: dict[str, str] | None = None):
        self.env = env
        self.commands: list[str] = []

    def run(self, command: str, *, stdin: str | None = None, warn: bool = False, timeout: float = 60,
            shown: str | None = None, on_stdout: Callable[[bytes], None] | None = None) -> Result:
        self.commands.append(command)
        p = subprocess.run(["sh", "-c", command], input=stdin or "", capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if on_stdout and p.stdout:
            on_stdout(p.stdout.encode())  # one chunk: what Connection.run streams as it arrives
        res = Result(command, p.stdout, p.stderr, p.returncode)
        if p.returncode and not warn:
            raise UnexpectedExit(res, shown)
        return res
