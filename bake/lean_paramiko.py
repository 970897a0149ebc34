"""paramiko, imported without the ``invoke`` package it tries to import on the way.

``paramiko.config`` imports invoke (which imports ``unittest.mock``) only to run ssh_config's
``Match exec``; this tool never parses an ssh_config. That import was about 30 ms of every
command that speaks SSH (``import paramiko`` 80-190 ms against 50-77 ms without, 5 runs each,
2026-11-30 19:23 UTC on this 2-core machine under load). Marking invoke absent for the length of
paramiko's import sends paramiko down its own "not installed" path (it keeps the ImportError and
raises it only for ``Match exec``); the mark is removed at once, so anyone importing invoke later
gets the real package.
"""

from __future__ import annotations

import sys

if "paramiko" in sys.modules or "invoke" in sys.modules:
    import paramiko
else:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # import invoke -> ImportError
    try:
        import paramiko
    finally:
        del sys.modules["invoke"]

__all__ = ["paramiko"]
