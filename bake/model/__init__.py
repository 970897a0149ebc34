"""The config and lock data model, shared by the AMI side and the rollout side.

No I/O here beyond reading bake.toml and reading/atomically writing amis.lock.json.
"""

from bake.model.config import BakeConfig, PoolConfig, load_config
from bake.model.lock import ImageDigest, LockEntry, LockFile, PoolLock

__all__ = [
    "BakeConfig",
    "PoolConfig",
    "load_config",
    "ImageDigest",
    "LockEntry",
    "LockFile",
    "PoolLock",
]
