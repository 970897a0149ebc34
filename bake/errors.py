"""Errors and the exit codes the CLI maps them to.

Library code raises these; only ``bake.cli`` turns them into messages and exit codes.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    BAKE_FAILED = 1
    USAGE = 2
    # `plan --check`: a pool would bake or reuse, so amis.lock.json is not what a build would
    # record and the rollout needs a new pull request.
    NOT_CURRENT = 4
    INTERRUPTED = 130  # SIGINT, 128 + 2
    TERMINATED = 143  # SIGTERM, 128 + 15


class BakeError(Exception):
    """A bake (or another operation) failed; exit 1."""

    exit_code = ExitCode.BAKE_FAILED


class UsageError(BakeError):
    """The user asked for something impossible: bad config, bad flag, unknown pool; exit 2."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """bake.toml is malformed or invalid. The message names the file, pool and key."""


class LockFileError(UsageError):
    """amis.lock.json is unreadable or corrupt. It is never overwritten in that state."""


class ImageReferenceError(UsageError, ValueError):
    """An image reference does not match the OCI reference grammar."""


class Cancelled(BaseException):
    """Raised inside a bake when SIGINT/SIGTERM asked it to stop.

    A BaseException so that broad ``except Exception`` retry loops never swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.TERMINATED if self.signum == 15 else ExitCode.INTERRUPTED
