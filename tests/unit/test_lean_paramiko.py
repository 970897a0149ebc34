"""paramiko is imported without invoke, and invoke stays importable for anyone else."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import bake.ssh
print("invoke" in sys.modules)
import paramiko.config
print(paramiko.config.invoke is None)
import invoke
print(invoke.__name__)
"""


def test_ssh_imports_paramiko_without_invoke_and_leaves_invoke_importable():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.split() == ["False", "True", "invoke"], r.stdout + r.stderr
