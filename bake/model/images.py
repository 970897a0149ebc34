"""An image as a bake pulls it: its reference resolved to a digest, and the credential the
builder needs for it. Made by ``bake.registry``, used by the steps and ``bake.runtimes``, which
need the data, not the HTTP client that found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bake.model.refs import ImageRef


@dataclass(frozen=True)
class Credential:
    """A user name and password for one registry. Never shown by repr or str."""

    registry: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ResolvedImage:
    ref: ImageRef
    digest: str
    credential: Credential | None  # what the builder needs to pull it; None: anonymous

    @property
    def pinned(self) -> str:
        """``REGISTRY/REPOSITORY@DIGEST``: the reference that pulls exactly this image."""
        return f"{self.ref.registry}/{self.ref.repository}@{self.digest}"
