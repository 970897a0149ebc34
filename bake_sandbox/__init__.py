"""The local sandbox: a stand-in for AWS on loopback, for the README demo and the end-to-end tests.

A package of its own beside ``bake``: the product never imports it (tests/unit/test_layering.py),
and only the ``sandbox`` extra brings moto. ``python -m bake sandbox`` reaches it through the
``bake.commands`` entry point (``bake_sandbox.command``), which loads this package, not the
sandbox: ``Sandbox`` and its companions load on first use, so ``python -m bake --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "SandboxInfo", "SandboxError", "Change"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bake_sandbox import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
