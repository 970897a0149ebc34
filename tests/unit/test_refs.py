from __future__ import annotations

import pytest

from bake.errors import ImageReferenceError
from bake.model.refs import parse_reference


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


@pytest.mark.parametrize(
    "bad",
    ["", "x; touch /tmp/pwned", "$(id)", "a b", "UPPER/x", "a:b:c", "img:tag`id`", "x/y:-bad", "x|y", "x&&y", "../x"],
)
def test_invalid_references_rejected(bad):
    with pytest.raises(ImageReferenceError):
        parse_reference(bad)
