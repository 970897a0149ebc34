"""Image references, checked against the distribution reference grammar.

The grammar and the normalization are distribution/reference's (``regexp.go``, ``reference.go``
``Parse``, ``normalize.go`` ``ParseNormalizedNamed``), ported as they are: the whole string must
match (a trailing newline does not), ASCII only, and Docker's normalization decides the registry:
a first component with a '.' or ':', ``localhost``, or an upper-case letter names the registry;
otherwise the image is on Docker Hub, under ``library/`` when its path has one component.
``docker.io`` and ``index.docker.io`` both name Docker Hub, so ``python``, ``library/python``,
``docker.io/python``, ``docker.io/library/python`` and ``index.docker.io/library/python`` are
one repository. tests/unit/test_refs.py holds distribution's own test cases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bake.errors import ImageReferenceError

# regexp.go, term by term. re.ASCII: Go's \w and classes are ASCII; Python's are Unicode.
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
_NAME = re.compile(rf"(?:(?P<domain>{_DOMAIN_AND_PORT})/)?(?P<path>{_REMOTE_NAME})", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)  # an image id, not a name
# go-digest: the algorithms containerd and registries accept, with their hex length (lower case).
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_ECR_HOST = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?", re.ASCII
)
NAME_TOTAL_LENGTH_MAX = 255  # of the path (reference.go's RepositoryNameTotalLengthMax)
DOCKER_HUB = "docker.io"
LEGACY_DOCKER_HUB = "index.docker.io"
OFFICIAL_PREFIX = "library/"


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
        m = _ECR_HOST.fullmatch(self.registry)
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


def _split_docker_domain(name: str) -> tuple[str, str]:
    """normalize.go's splitDockerDomain: (registry, the rest) of a familiar name."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, OFFICIAL_PREFIX + name
    if first == LEGACY_DOCKER_HUB:
        domain, remote = DOCKER_HUB, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DOCKER_HUB, name
    if domain == DOCKER_HUB and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote  # "docker.io/python" is "docker.io/library/python"
    return domain, remote


def _invalid(ref: str, why: str) -> ImageReferenceError:
    return ImageReferenceError(f"invalid image reference {ref!r}: {why}")


def _check_digest(ref: str, digest: str) -> None:
    algorithm, _, hexdigest = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    if length is None:
        raise _invalid(ref, f"unsupported digest algorithm {algorithm!r} (one of {', '.join(_DIGEST_HEX)})")
    if len(hexdigest) != length or hexdigest != hexdigest.lower():
        raise _invalid(ref, f"a {algorithm} digest is {length} lower-case hex characters")


def parse_reference(ref: str) -> ImageRef:
    """ParseNormalizedNamed: the registry, repository, tag and digest ``ref`` names."""
    if not isinstance(ref, str) or not ref:
        raise ImageReferenceError("an image reference must be a non-empty string")
    bad = next((c for c in ref if not (c.isascii() and (c.isalnum() or c in "._-/:@[]"))), None)
    if bad is not None:
        raise _invalid(ref, f"the character {bad!r} is not allowed")
    if _IDENTIFIER.fullmatch(ref):
        raise _invalid(ref, "a 64-character hex string is an image id, not a repository name")
    domain, remainder = _split_docker_domain(ref)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise _invalid(ref, f"repository names are lower-case ({remote!r})")
    full = f"{domain}/{remainder}"
    m = _REFERENCE.fullmatch(full)
    if not m:
        raise _invalid(ref, "it does not match [REGISTRY/]REPOSITORY[:TAG][@DIGEST]")
    name = _NAME.fullmatch(m["name"])
    assert name is not None  # the reference pattern contains the name pattern
    path = name["path"]
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(ref, f"repository name longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if m["digest"]:
        _check_digest(ref, m["digest"])
    return ImageRef(original=ref, registry=name["domain"], repository=path, tag=m["tag"], digest=m["digest"])
