"""``python -m bake ARGS`` as a user runs it: a subprocess from a folder, with its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bake(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI from ``cwd`` (default the repository) with ``env`` over this process's
    environment; the repository leads PYTHONPATH so a checkout's code runs, not an install."""
    full = {**os.environ, **(env or {})}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "bake", *args], cwd=cwd or ROOT, env=full, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
