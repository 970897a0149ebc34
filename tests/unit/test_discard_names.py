"""Which repository an image record in containerd names (the sandbox's discard matches on it)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bake_sandbox.discard import _name_repository, doomed_names, pull_leases


@pytest.mark.parametrize("name, repository", [
    ("127.0.0.1:45443/env/app:v1", "127.0.0.1:45443/env/app"),
    ("127.0.0.1:45443/env/app@sha256:ab", "127.0.0.1:45443/env/app"),
    ("registry.example.com/team/app:latest", "registry.example.com/team/app"),
    ("sha256:0123abcd", "sha256"),  # an image id names no repository: it goes by its digest
])
def test_name_repository(name, repository):
    assert _name_repository(name) == repository


LEASES = """ID             CREATED AT           LABELS
old-pull       2026-11-30T19:18:40Z containerd.io/gc.expire=2026-12-01T19:18:40Z
new-pull       2026-11-30T19:34:32Z containerd.io/gc.expire=2026-12-01T19:34:32Z
forever        2026-11-30T19:40:00Z
other-label    2026-11-30T19:41:00Z owner=someone
"""


def test_pull_leases_are_the_expiring_ones_since_the_session_began():
    since = datetime(2026, 11, 30, 19, 30, tzinfo=timezone.utc)
    assert pull_leases(LEASES, since) == ["new-pull"]
    assert pull_leases(LEASES, datetime(2026, 11, 30, 19, 18, 40, tzinfo=timezone.utc)) == ["old-pull", "new-pull"]


IMAGES = """REF                                   TYPE                                    DIGEST        SIZE    PLATFORMS   LABELS
127.0.0.1:45443/scratch/a:v1          application/vnd.oci.image.manifest.v1   sha256:aaa    1.0 MiB linux/amd64 io.cri-containerd.image=managed
127.0.0.1:45443/scratch/a@sha256:aaa  application/vnd.oci.image.manifest.v1   sha256:aaa    1.0 MiB linux/amd64 io.cri-containerd.image=managed
sha256:1d1d                           application/vnd.oci.image.manifest.v1   sha256:aaa    1.0 MiB linux/amd64 io.cri-containerd.image=managed
mirror.example.com/a:v1               application/vnd.oci.image.manifest.v1   sha256:aaa    1.0 MiB linux/amd64 -
127.0.0.1:45443/env/app-1:v1          application/vnd.oci.image.manifest.v1   sha256:bbb    10 MiB  linux/amd64 -
elsewhere.example.com/c:v1            application/vnd.oci.image.manifest.v1   sha256:ccc    1.0 MiB linux/amd64 -
"""


def test_doomed_names_follow_a_match_to_every_name_of_its_image():
    a = ["127.0.0.1:45443/scratch/a:v1", "127.0.0.1:45443/scratch/a@sha256:aaa", "sha256:1d1d", "mirror.example.com/a:v1"]
    assert doomed_names(IMAGES, lambda n: _name_repository(n) == "127.0.0.1:45443/scratch/a") == a
    assert doomed_names(IMAGES, lambda n: False, {"sha256:aaa"}) == a  # by digest alone: the names it goes by
    by_host = doomed_names(IMAGES, lambda n: n.startswith("127.0.0.1:45443/"))
    assert by_host == [*a, "127.0.0.1:45443/env/app-1:v1"]  # not elsewhere.example.com's other image
