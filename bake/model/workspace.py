"""The workspace: where bake.toml and amis.lock.json are and which AWS region a run works in,
decided here once for every command, the lifecycle library and main.py.

The config: ``--config``, else ``$BAKE_CONFIG``, else ``bake.toml`` in the working directory.
The lock: ``--lock``, else ``$BAKE_LOCK``, else ``amis.lock.json`` beside the config. Before
issue 20 main.py read ``./amis.lock.json`` while the CLI read the lock beside the config, so a
``BAKE_CONFIG`` elsewhere gave two answers.
The region: ``--region``, else the config's ``region``, else the AWS chain (AWS_REGION, the
profile...). The chain is the AMI side's to ask (``bake.aws.chain_region``): this module stays
free of boto3, as main.py must.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bake.errors import UsageError
from bake.model.config import DEFAULT_CONFIG, BakeConfig, load_config
from bake.model.lock import DEFAULT_LOCK_NAME, LockFile

CONFIG_ENV = "BAKE_CONFIG"
LOCK_ENV = "BAKE_LOCK"


def config_path(given: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(given or environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def lock_path(config: str | Path | None, given: str | Path | None = None,
              environ: Mapping[str, str] = os.environ) -> Path:
    """``config``: the config's path (None: no config, the working directory)."""
    if given or environ.get(LOCK_ENV):
        return Path(given or environ[LOCK_ENV])
    return (Path(config).parent if config is not None else Path()) / DEFAULT_LOCK_NAME


def resolve_region(explicit: str | None, configured: str | None, chain: Callable[[], str | None],
                   config: Path, flag: bool = False) -> str:
    """``explicit`` (--region), else ``configured`` (the config's region), else what ``chain``
    finds (the AWS chain: AWS_REGION, AWS_DEFAULT_REGION, the profile). None of them: an error
    (``flag``: the command takes --region, say so)."""
    found = explicit or configured or chain()
    if not found:
        raise UsageError("no AWS region: " + ("pass --region, " if flag else "")
                         + f"set region in {config}, or set AWS_REGION or AWS_DEFAULT_REGION")
    return found


@dataclass(frozen=True)
class Workspace:
    config_path: Path
    lock_path: Path
    config_named: bool  # asked for by name (--config or $BAKE_CONFIG): then it must exist
    region: str | None = None  # --region
    region_flag: bool = False  # the command takes --region

    @classmethod
    def resolve(cls, config: str | Path | None = None, lock: str | Path | None = None, region: str | None = None,
                environ: Mapping[str, str] = os.environ, region_flag: bool = False) -> Workspace:
        path = config_path(config, environ)
        return cls(path, lock_path(path, lock, environ), bool(config or environ.get(CONFIG_ENV)), region, region_flag)

    @classmethod
    def of(cls, args: Any) -> Workspace:
        """From a command's arguments (``--config``, ``--lock``, ``--region``, where it has them)."""
        return cls.resolve(getattr(args, "config", None), getattr(args, "lock", None), getattr(args, "region", None),
                           region_flag=hasattr(args, "region"))

    def config(self) -> BakeConfig:
        return load_config(self.config_path)

    def optional_config(self) -> BakeConfig | None:
        """For the commands that also run without a config (prune, sweep): the config asked for
        by name, else ``bake.toml`` if it exists, else None."""
        return self.config() if self.config_named or self.config_path.is_file() else None

    def lock(self) -> LockFile:
        return LockFile(self.lock_path)

    def aws_region(self, config: BakeConfig | None, chain: Callable[[], str | None]) -> str:
        """The run's region (``resolve_region``); ``chain`` asks the AWS chain (``bake.aws.chain_region``)."""
        return resolve_region(self.region, config.region if config else None, chain, self.config_path, self.region_flag)
