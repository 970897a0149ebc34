"""The synthesized stack's folder (cdktf.out/stacks/nodepools) as terraform and cdktf find it.

Two things beside ``cdk.tf.json`` decide whether ``cdktf diff`` / ``cdktf deploy`` work:

- The provider lock file. Without one, cdktf runs ``terraform providers lock
  -platform=linux_amd64``, which asks the public registry even when the providers come from a
  local mirror; offline that fails ("Could not retrieve providers for locking"). Where the
  project's mirror is in use, ``lock_providers`` writes the lock from the mirror itself.
- The backend terraform was initialised for (``.terraform/terraform.tfstate``). Pointing the
  checkout at another bake.toml (the demo's, then one's own) changes it, and the next
  ``terraform init`` stops at "Backend configuration changed". ``backend_hint`` says what to run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from nodepools import tfenv

LOCK_FILE = ".terraform.lock.hcl"
PLATFORM = "linux_amd64"  # the platform cdktf locks for


class ProviderLockError(RuntimeError):
    """``terraform providers lock`` from the mirror failed."""


def lock_providers(stack_dir: Path, env: Mapping[str, str]) -> bool:
    """Write ``stack_dir``'s provider lock from the offline mirror when it has none and the
    project's CLI config (the mirror) is in use. True when a lock was written."""
    terraform = shutil.which("terraform", path=env.get("PATH"))
    if (stack_dir / LOCK_FILE).exists() or not tfenv.uses_mirror(env) or terraform is None:
        return False
    p = subprocess.run([terraform, f"-chdir={stack_dir}", "providers", "lock", "-no-color",
                        f"-fs-mirror={tfenv.MIRROR}", f"-platform={PLATFORM}"],
                       env=dict(env), capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise ProviderLockError(f"terraform providers lock -fs-mirror={tfenv.MIRROR} failed in {stack_dir}:\n"
                           f"{p.stderr.strip() or p.stdout.strip()}")
    return True


def _backend(stack_dir: Path) -> tuple[str, dict] | None:
    """The backend in cdk.tf.json: (type, settings)."""
    synthesized = json.loads((stack_dir / "cdk.tf.json").read_text())
    backend = synthesized.get("terraform", {}).get("backend") or {}
    return next(iter(backend.items()), None)


def _initialised_backend(stack_dir: Path) -> tuple[str, dict] | None:
    """The backend ``terraform init`` last set up in this folder: (type, settings)."""
    try:
        recorded = json.loads((stack_dir / ".terraform" / "terraform.tfstate").read_text())["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded.get("type"), recorded.get("config") or {}


def backend_hint(stack_dir: Path) -> str | None:
    """A hint when the folder was initialised for another backend than the one just
    synthesized (terraform would stop at "Backend configuration changed"); None otherwise."""
    old, new = _initialised_backend(stack_dir), _backend(stack_dir)
    if old is None or new is None:
        return None
    same = old[0] == new[0] and all(old[1].get(k) == v for k, v in new[1].items())
    if same:
        return None
    chdir = f"terraform -chdir={stack_dir}"
    return (f"{stack_dir} was initialised for another state backend ({_show(old)}; now {_show(new)}), "
            f'so terraform init would stop at "Backend configuration changed". If you switched to '
            f"another bake.toml, run `{chdir} init -reconfigure` (each config keeps its own state); "
            f"to move this state to the new backend, run `{chdir} init -migrate-state`.")


def _show(backend: tuple[str, dict]) -> str:
    kind, settings = backend
    keys = ("path",) if kind == "local" else ("bucket", "key", "region")
    shown = ", ".join(f"{k}={settings[k]}" for k in keys if settings.get(k) is not None)
    return f"{kind}: {shown}" if shown else kind
