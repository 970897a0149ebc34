"""The environment terraform runs in: the project's CLI config (provider mirror), no checkpoint.

``python -m nodepools.tfenv`` prints ``export`` lines for a shell:
``eval "$(python -m nodepools.tfenv)"``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from pathlib import Path

CLI_CONFIG = Path(__file__).resolve().parents[2] / "terraform" / "cli.tfrc"
MIRROR = Path("/opt/tf-plugins")  # the provider mirror cli.tfrc names


def terraform_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default os.environ) with TF_CLI_CONFIG_FILE set to the project's
    config when it is unset or names a file that does not exist; a real one is kept."""
    out = dict(os.environ if env is None else env)
    current = out.get("TF_CLI_CONFIG_FILE")
    # Only where the offline mirror exists: elsewhere terraform's own registry serves users.
    if (not current or not Path(current).is_file()) and MIRROR.is_dir():
        out["TF_CLI_CONFIG_FILE"] = str(CLI_CONFIG)
    out.setdefault("CHECKPOINT_DISABLE", "1")
    out.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    return out


def uses_mirror(env: Mapping[str, str]) -> bool:
    """Whether terraform run with ``env`` takes its providers from the project's offline mirror."""
    current = env.get("TF_CLI_CONFIG_FILE")
    return bool(current) and Path(current).resolve() == CLI_CONFIG and MIRROR.is_dir()


def apply(env: MutableMapping[str, str] | None = None) -> None:
    """Set the same variables in ``env`` (default os.environ) in place."""
    target = os.environ if env is None else env
    target.update({k: v for k, v in terraform_env(target).items() if target.get(k) != v})


if __name__ == "__main__":
    e = terraform_env()
    for k in ("TF_CLI_CONFIG_FILE", "CHECKPOINT_DISABLE", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"):
        print(f"export {k}={shlex.quote(e[k])}")
