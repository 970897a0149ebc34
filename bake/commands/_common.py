"""Arguments and set-up shared by the commands that read bake.toml and amis.lock.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from bake.model.config import DEFAULT_CONFIG, BakeConfig, load_config
from bake.model.lock import DEFAULT_LOCK_NAME, LockFile


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", help="the config file (default: %(default)s)")
    p.add_argument("--lock", metavar="FILE", help=f"the lock file (default: {DEFAULT_LOCK_NAME} beside the config)")


def load(args: argparse.Namespace) -> tuple[BakeConfig, LockFile]:
    config = load_config(args.config)
    lock_path = Path(args.lock) if args.lock else Path(args.config).parent / DEFAULT_LOCK_NAME
    return config, LockFile(lock_path)
