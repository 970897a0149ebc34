#!/usr/bin/env python3
"""Synthesize the node-pool stack: ``python main.py`` (or ``cdktf synth``) -> cdktf.out/stacks/nodepools.

Reads the config and the lock where ``python -m bake`` finds them (bake.model.workspace: $BAKE_CONFIG,
else ./bake.toml; $BAKE_LOCK, else amis.lock.json beside the config; ``load_config`` validates
the whole file, rollout tables included), reads each
``user_data_file``, and only then
loads cdktf and builds the stack: the constructs do no I/O. Errors print one line and exit non-zero.
Then it readies the stack's folder for ``cdktf diff/deploy`` (see nodepools.stackdir).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for p in (ROOT, ROOT / "constructs"):  # the source roots, as in pyproject (never `constructs` itself)
    if str(p) not in sys.path:
        sys.path.append(str(p))

from bake.errors import BakeError, ConfigError  # noqa: E402
from bake.model.config import load_config  # noqa: E402
from bake.model.lock import LockFile  # noqa: E402
from bake.model.workspace import Workspace  # noqa: E402
from bake.model.stack import STACK_ID  # noqa: E402
from nodepools import stackdir, tfenv  # noqa: E402
from nodepools.props import StackProps, stack_props  # noqa: E402


def load_props(config_path: str | Path, lock_path: str | Path) -> StackProps:
    """All the I/O: config, lock, user data files. Raises BakeError subclasses."""
    config = load_config(config_path)
    user_data: dict[str, str] = {}
    for name, pool in config.pools.items():
        path = pool.rollout.launch_template.user_data_path(config.path)
        if path is not None and pool.rollout.launch != "none":
            try:
                # Bytes, then decode: text mode would turn CRLF into LF; user data passes as is.
                user_data[name] = path.read_bytes().decode("utf-8")
            except OSError as e:
                raise ConfigError(
                    f"{config.path}: pools.{name}.launch_template.user_data_file: cannot read {path}: {e.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(
                    f"{config.path}: pools.{name}.launch_template.user_data_file: {path} is not UTF-8 text"
                ) from None
    lock = LockFile(lock_path).read()
    return stack_props(config, lock, user_data)


def main() -> int:
    tfenv.apply()
    ws = Workspace.resolve()
    try:
        props = load_props(ws.config_path, ws.lock_path)
    except BakeError as e:
        sys.stderr.write(f"main.py: error: {e}\n")
        return int(e.exit_code)
    from cdktf import App  # the slow import (the AWS provider bindings), after validation

    from nodepools.stack import NodePoolsStack

    app = App()
    NodePoolsStack(app, STACK_ID, props)
    app.synth()
    stack_dir = Path(app.outdir) / "stacks" / STACK_ID
    try:
        stackdir.lock_providers(stack_dir, os.environ)  # so `cdktf diff/deploy` need no registry
    except stackdir.ProviderLockError as e:  # the stack is written; terraform init will say more
        sys.stderr.write(f"main.py: warning: {e}\n")
    hint = stackdir.backend_hint(stack_dir)
    if hint:
        sys.stderr.write(f"main.py: warning: {hint}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
