"""Arguments and set-up shared by the commands that read bake.toml and amis.lock.json."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bake.errors import BakeError
from bake.model.config import DEFAULT_CONFIG, BakeConfig
from bake.model.lock import DEFAULT_LOCK_NAME, LockFile
from bake.model.workspace import CONFIG_ENV, LOCK_ENV, Workspace
from bake.progress import Reporter


def add_config_args(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_lock_arg(p)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help=f"the config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")


def add_lock_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock", metavar="FILE",
                   help=f"the lock file (default: ${LOCK_ENV}, else {DEFAULT_LOCK_NAME} beside the config)")


def add_account_args(p: argparse.ArgumentParser) -> None:
    """For the commands that work on what is in the account (prune, sweep): they also run
    without a config, from the lock and the region alone."""
    p.add_argument("--config", metavar="FILE",
                   help=f"the config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG} if present)")
    add_lock_arg(p)
    p.add_argument("--region", help="only this AWS region (default: the config's, else the AWS chain, and every "
                                    "region a pool's [distribute] names)")


def remove_or_fail(command: str, region: str, remove: Callable[[Reporter], list[str]]) -> None:
    """Run one region's removal with its progress on stderr; what it could not remove fails
    the command, naming the region."""
    from bake.progress import PlainReporter

    with PlainReporter(sys.stderr) as reporter:
        failures = remove(reporter)
    if failures:
        raise BakeError(f"{command} could not remove in {region}: " + "; ".join(failures))


def load(args: argparse.Namespace) -> tuple[BakeConfig, LockFile]:
    ws = Workspace.of(args)
    return ws.config(), ws.lock()
