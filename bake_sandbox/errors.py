"""The sandbox's one error type: a component that could not be started, checked or stopped."""

from __future__ import annotations

from bake.errors import BakeError


class SandboxError(BakeError):
    """A sandbox component failed. The message names the component and the tail of its log."""
