"""Image references, checked against the OCI/distribution reference grammar.

The grammar is distribution/reference's (``reference.go``); normalization follows Docker's:
a first path component with a '.' or ':' (or ``localhost``) names the registry, otherwise the
image lives on Docker Hub, under ``library/`` when it has a single component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bake.errors import ImageReferenceError

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_REFERENCE = re.compile(rf"^{_NAME}(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
NAME_TOTAL_LENGTH_MAX = 255
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. ``original`` is what the user wrote and what the node will ask for."""

    original: str
    registry: str  # host[:port]; "docker.io" for Docker Hub
    repository: str  # e.g. "library/python"
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return "registry-1.docker.io" if self.registry == DOCKER_HUB else self.registry

    @property
    def ecr(self) -> tuple[str, str] | None:
        """(account, region) for an ECR registry, else None."""
        m = _ECR_HOST.match(self.registry)
        return (m["account"], m["region"]) if m else None

    @property
    def canonical(self) -> str:
        """Docker's fully qualified form, as containerd and `docker image inspect` name it."""
        name = f"{self.registry}/{self.repository}"
        if self.tag or not self.digest:
            name += f":{self.tag or 'latest'}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def parse_reference(ref: str) -> ImageRef:
    if not isinstance(ref, str) or not ref:
        raise ImageReferenceError("an image reference must be a non-empty string")
    m = _REFERENCE.match(ref)
    if not m:
        bad = next((c for c in ref if not (c.isalnum() or c in "._-/:@[]")), None)
        why = f"the character {bad!r} is not allowed" if bad else "it does not match NAME[:TAG][@DIGEST]"
        raise ImageReferenceError(f"invalid image reference {ref!r}: {why}")
    domain, path = m["domain"], m["path"]
    if domain and not ("." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")):
        # "org/image": the first component is a Docker Hub namespace, not a host.
        if not re.fullmatch(_PATH_COMPONENT, domain):
            raise ImageReferenceError(
                f"invalid image reference {ref!r}: repository names are lower-case"
            )
        path, domain = f"{domain}/{path}", None
    if domain is None:
        # Docker Hub; "python" means "library/python".
        if "/" not in path:
            path = f"library/{path}"
        domain = DOCKER_HUB
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ImageReferenceError(f"invalid image reference {ref!r}: name longer than 255 characters")
    return ImageRef(original=ref, registry=domain, repository=path, tag=m["tag"], digest=m["digest"])
