"""Where bake.toml and amis.lock.json are: one answer for the CLI and for main.py.

The config: ``--config``, else ``$BAKE_CONFIG``, else ``bake.toml`` in the working directory.
The lock: ``--lock``, else ``$BAKE_LOCK``, else ``amis.lock.json`` beside the config. Before
issue 20 main.py read ``./amis.lock.json`` while the CLI read the lock beside the config, so a
``BAKE_CONFIG`` elsewhere gave two answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bake.model.config import DEFAULT_CONFIG
from bake.model.lock import DEFAULT_LOCK_NAME

CONFIG_ENV = "BAKE_CONFIG"
LOCK_ENV = "BAKE_LOCK"


def config_path(given: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(given or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def config_named(given: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a config was asked for by name (``--config`` or ``$BAKE_CONFIG``): then it must
    exist; the commands that also run without one (prune, sweep) take ``bake.toml`` only if present."""
    return bool(given or environ.get(CONFIG_ENV))


def lock_path(config: str | Path | None, given: str | Path | None = None,
              environ: Mapping[str, str] = os.environ) -> Path:
    """``config``: the config's path (None: no config, the working directory)."""
    if given or environ.get(LOCK_ENV):
        return Path(given or environ[LOCK_ENV])
    return (Path(config).parent if config is not None else Path()) / DEFAULT_LOCK_NAME
