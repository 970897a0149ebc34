"""bake.model.refs against distribution/reference's own test cases.

Ported from github.com/distribution/reference (commit 0965666, read 2026-12-06):
``reference_test.go`` TestReferenceParse and ``normalize_test.go`` TestValidateReferenceName,
TestValidateRemoteName, TestParseRepositoryInfo. Their ``Parse`` cases are restated as
``ParseNormalizedNamed`` gives them (what Docker, containerd and this tool do): a first component
without '.', ':' or an upper-case letter, and not ``localhost``, is a Docker Hub namespace.
"""

from __future__ import annotations

import pytest

from bake.errors import ImageReferenceError
from bake.model.refs import parse_reference

F64 = "f" * 64
SHA = f"sha256:{F64}"
HUB = "docker.io"

# (reference, registry, repository, tag, digest)
VALID = [
    # reference_test.go TestReferenceParse, normalized
    ("test_com", HUB, "library/test_com", None, None),
    ("test.com:tag", HUB, "library/test.com", "tag", None),
    ("test.com:5000", HUB, "library/test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", None, None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    (f"test:5000/repo@{SHA}", "test:5000", "repo", None, SHA),
    (f"test:5000/repo:tag@{SHA}", "test:5000", "repo", "tag", SHA),
    ("lowercase:Uppercase", HUB, "library/lowercase", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", HUB, "a/" * 127 + "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", None, None),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA}", "xn--7o8h.com", "myimage", "xn--7o8h.com", SHA),
    ("foo_bar.com:8080", HUB, "library/foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", HUB, "foo/foo_bar.com", "8080", None),
    ("192.168.1.1", HUB, "library/192.168.1.1", None, None),
    ("192.168.1.1:tag", HUB, "library/192.168.1.1", "tag", None),
    ("192.168.1.1:5000", HUB, "library/192.168.1.1", "5000", None),
    ("192.168.1.1/repo", "192.168.1.1", "repo", None, None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", None, None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", None, None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", None, None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "repo", "tag", None),
    (f"[2001:db8::1]:5000/repo@{SHA}", "[2001:db8::1]:5000", "repo", None, SHA),
    (f"[2001:db8::1]:5000/repo:tag@{SHA}", "[2001:db8::1]:5000", "repo", "tag", SHA),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", None, None),
    ("[::1]:5000/repo", "[::1]:5000", "repo", None, None),
    ("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag", None),
    # normalize_test.go TestValidateReferenceName (valid) and TestParseRepositoryInfo
    ("docker/docker", HUB, "docker/docker", None, None),
    ("library/debian", HUB, "library/debian", None, None),
    ("debian", HUB, "library/debian", None, None),
    ("localhost/library/debian", "localhost", "library/debian", None, None),
    ("localhost/debian", "localhost", "debian", None, None),
    ("LOCALDOMAIN/library/debian", "LOCALDOMAIN", "library/debian", None, None),
    ("LOCALDOMAIN/debian", "LOCALDOMAIN", "debian", None, None),
    ("docker.io/docker/docker", HUB, "docker/docker", None, None),
    ("docker.io/library/debian", HUB, "library/debian", None, None),
    ("docker.io/debian", HUB, "library/debian", None, None),
    ("index.docker.io/docker/docker", HUB, "docker/docker", None, None),
    ("index.docker.io/library/debian", HUB, "library/debian", None, None),
    ("index.docker.io/debian", HUB, "library/debian", None, None),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker", None, None),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", None, None),
    ("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", None, None),
    ("192.168.0.1", HUB, "library/192.168.0.1", None, None),
    ("192.168.0.1:80", HUB, "library/192.168.0.1", "80", None),
    ("192.168.0.1:8/debian", "192.168.0.1:8", "debian", None, None),
    ("192.168.0.2:25000/debian", "192.168.0.2:25000", "debian", None, None),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", HUB,
     "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", None, None),
    ("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", None, None),
    ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker", None, None),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", None, None),
    ("docker.io/" + "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", HUB,
     "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", None, None),
    ("Docker/docker", "Docker", "docker", None, None),
    ("DOCKER/docker", "DOCKER", "docker", None, None),
    ("docker-rules/docker", HUB, "docker-rules/docker", None, None),
    ("docker---rules/docker", HUB, "docker---rules/docker", None, None),
    ("d/docker", HUB, "d/docker", None, None),
    ("jess/t", HUB, "jess/t", None, None),
    ("dock__er/docker", HUB, "dock__er/docker", None, None),
    ("localhost/fooo/bar", "localhost", "fooo/bar", None, None),
    ("index.docker.io/fooo/bar", HUB, "fooo/bar", None, None),
    ("index.docker.io/library/ubuntu-12.04-base", HUB, "library/ubuntu-12.04-base", None, None),
    ("library/foo/bar", HUB, "library/foo/bar", None, None),
    ("docker.io/store/foo/bar", HUB, "store/foo/bar", None, None),
    ("example.com:8000/private/moonbase", "example.com:8000", "private/moonbase", None, None),
    ("Foo/bar", "Foo", "bar", None, None),
    # TestParseReferenceWithTagAndDigest
    ("busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa", HUB, "library/busybox",
     "latest", "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"),
]

INVALID = [
    # reference_test.go
    "",
    ":justtag",
    f"@{SHA}",
    "repo@sha256:" + "f" * 34,  # digest of the wrong length
    f"validname@invaliddigest:{F64}",  # unsupported algorithm
    "Uppercase:tag",
    "test:5000/Uppercase/lowercase:tag",
    "domain/" + "a" * 256 + ":tag",  # repository longer than 255
    "aa/asdf$$^/aa",
    "[2001:db8::1]",
    "[2001:db8::1]:5000",
    "[2001:db8::1]:tag",
    "[fe80::1%eth0]:5000/repo",
    "[fe80::1%@invalidzone]:5000/repo",
    # normalize_test.go
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",  # an image id
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
    "-foo",
    "busybox:-foo",  # TestInvalidReferenceComponents: an invalid tag
    # the whole string, in ASCII (issue 20): Python's `$` and `\w` would let these through
    "python:3.12\n",
    "python\n",
    "pythön:3",
    "python:3.12é",
    "python:３",
    # this project's own: shell metacharacters never reach a command line
    "x; touch /tmp/pwned", "$(id)", "a b", "a:b:c", "img:tag`id`", "x|y", "x&&y", "../x",
]


@pytest.mark.parametrize("ref, registry, repository, tag, digest", VALID, ids=[v[0][:60] for v in VALID])
def test_distribution_valid_references(ref, registry, repository, tag, digest):
    r = parse_reference(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize("bad", INVALID, ids=[repr(b)[:60] for b in INVALID])
def test_distribution_invalid_references(bad):
    with pytest.raises(ImageReferenceError, match="image reference"):
        parse_reference(bad)


def test_the_table_is_distributions_size():
    assert len(VALID) + len(INVALID) >= 40


@pytest.mark.parametrize(
    "written", ["python:3.12", "library/python:3.12", "docker.io/python:3.12", "docker.io/library/python:3.12",
                "index.docker.io/library/python:3.12", "index.docker.io/python:3.12"],
)
def test_docker_hub_spellings_are_one_repository(written):
    r = parse_reference(written)
    assert (r.registry, r.api_host, r.repository, r.tag) == ("docker.io", "registry-1.docker.io", "library/python", "3.12")
    assert r.canonical == "docker.io/library/python:3.12"


@pytest.mark.parametrize(
    "ref, registry, repository, tag, canonical",
    [
        ("python", "docker.io", "library/python", None, "docker.io/library/python:latest"),
        ("org/img:1", "docker.io", "org/img", "1", "docker.io/org/img:1"),
        ("quay.io/org/env:rev9", "quay.io", "org/env", "rev9", "quay.io/org/env:rev9"),
        ("localhost:5000/a/b:c", "localhost:5000", "a/b", "c", "localhost:5000/a/b:c"),
        ("127.0.0.1:45443/env/app-1:v1", "127.0.0.1:45443", "env/app-1", "v1", "127.0.0.1:45443/env/app-1:v1"),
    ],
)
def test_normalization(ref, registry, repository, tag, canonical):
    r = parse_reference(ref)
    assert (r.registry, r.repository, r.tag, r.canonical) == (registry, repository, tag, canonical)


def test_ecr_and_digest():
    d = "sha256:" + "ab" * 32
    r = parse_reference(f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/env@{d}")
    assert r.ecr == ("123456789012", "eu-west-1")
    assert r.reference == d and r.tag is None
    assert parse_reference("quay.io/x:y").ecr is None


def test_messages_say_what_is_wrong():
    with pytest.raises(ImageReferenceError, match=r"character '\\n' is not allowed"):
        parse_reference("python:3.12\n")
    with pytest.raises(ImageReferenceError, match="lower-case"):
        parse_reference("docker/Docker")
    with pytest.raises(ImageReferenceError, match="sha256 digest is 64"):
        parse_reference("repo@sha256:" + "f" * 34)
