"""Finding exactly the images' files in containerd's answers (bake/cache.py), on output recorded
from containerd 1.6 (the end-to-end proof against the real one is tests/e2e/test_first_start.py)."""

from __future__ import annotations

import json

import pytest

from bake import cache

IDX = "sha256:6d27eed4eab4187989aee519c86405540639b7c7043892955682ecba3e6d45b2"
MANIFEST = "sha256:a4ce6213fd4b6f85daef8f5e65c29c5f15bfea5a87111b2e66f8b1c0929d81f2"
CONFIG = "sha256:27f9fb0d6f31021ecaed9a54e2b84b3ed7b5b8f826130eb6d45ccf268c060a55"
L0 = "sha256:0ba3aa2ff8ff8fcbbe30594f8a0da75ceffe9e55128e19668a2d2ee043fc00c5"
L1 = "sha256:0d1701180e9377030d22b76e4c3f28e1bef6953a94c5750f180559522121a5fe"
OTHER = "sha256:5cc389a2de79f84efdd04541cf23d6bcd6f018995af49eaeef2b06e16a1a3606"
TOP = "sha256:4c876cdb9164c8358178e45201cb5dbb5ddead4a91916a02000049209096cc61"

CONTENT_LS = f"""DIGEST\tSIZE\tAGE\tLABELS
{L0}\t3.011MB\tLess than a second\tcontainerd.io/uncompressed={L0}
{L1}\t1.004MB\t1 second\tcontainerd.io/uncompressed={L1}
{CONFIG}\t289B\tLess than a second\tcontainerd.io/gc.ref.snapshot.overlayfs={TOP}
{OTHER}\t2.007MB\t1 second\t-
{IDX}\t491B\tLess than a second\tcontainerd.io/gc.ref.content.m.0={MANIFEST}
{MANIFEST}\t553B\t1 second\tcontainerd.io/gc.ref.content.l.1={L1},containerd.io/gc.ref.content.l.0={L0},containerd.io/gc.ref.content.config={CONFIG}
"""
ROOT = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
VIEWS = f"""=== view {TOP}
[
    {{"Type": "overlay", "Source": "overlay",
      "Options": ["index=off", "lowerdir={ROOT}/2/fs:{ROOT}/1/fs"]}}
]
"""


def test_walk_finds_exactly_the_images_blobs_and_top_snapshot():
    blobs, tops = cache.walk_content([IDX], cache.parse_content_labels(CONTENT_LS))
    assert blobs == sorted([IDX, MANIFEST, CONFIG, L0, L1])  # not OTHER: another image's layer
    assert tops == {TOP: "overlayfs"}


def test_an_absent_blob_is_skipped():
    labels = cache.parse_content_labels(CONTENT_LS)
    del labels[MANIFEST]  # another platform's manifest is not pulled
    assert cache.walk_content([IDX], labels) == ([IDX], {})


def test_views_name_every_layer_directory_and_the_root():
    views = cache.split_views(VIEWS)
    dirs = cache.parse_view_mounts(views[TOP])
    assert dirs == [f"{ROOT}/2/fs", f"{ROOT}/1/fs"]
    assert cache.content_root(dirs) == "/var/lib/containerd"
    bind = '[{"Type": "bind", "Source": "/x/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs", "Options": ["ro"]}]'
    assert cache.parse_view_mounts(bind) == ["/x/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs"]
    paths = cache.CachePaths(files=(cache.blob_path("/var/lib/containerd", L0),), dirs=tuple(dirs))
    assert paths.measured == (f"/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/{L0[7:]}",
                              f"{ROOT}/1", f"{ROOT}/2")
    assert paths.listing().splitlines()[1] == f"d {ROOT}/2/fs"


def test_docker_layer_dirs_and_du_total():
    gd = {"Name": "overlay2", "Data": {"LowerDir": "/d/l2/diff:/d/l1/diff", "UpperDir": "/d/u/diff",
                                        "MergedDir": "/d/u/merged", "WorkDir": "/d/u/work"}}
    assert cache.docker_layer_dirs(gd) == ["/d/u/diff", "/d/l2/diff", "/d/l1/diff"]
    assert cache.parse_du_total("100\t/a\n200\t/b\n300\ttotal\n") == 300
    with pytest.raises(cache.CacheError):
        cache.parse_du_total("du: cannot access")



def test_docker_paths_inspects_every_image_in_one_command():
    from bake.model.images import ResolvedImage
    from bake.model.refs import parse_reference
    from bake.ssh import Result

    drivers = {"app:1": {"Name": "overlay2", "Data": {"LowerDir": "/d/base/diff", "UpperDir": "/d/a/diff"}},
               "app:2": {"Name": "overlay2", "Data": {"LowerDir": "/d/base/diff", "UpperDir": "/d/b/diff"}}}

    class Builder:
        def __init__(self, lines: int):
            self.lines, self.commands = lines, []

        def run(self, command: str, **kw: object) -> Result:
            self.commands.append(command)
            out = "".join(json.dumps(d) + "\n" for d in list(drivers.values())[: self.lines])
            return Result(command, out, "", 0)

    images = [ResolvedImage(parse_reference(r), "sha256:" + c * 64, None) for r, c in (("app:1", "a"), ("app:2", "b"))]
    conn = Builder(lines=2)
    paths = cache.docker_paths(conn, images)
    assert len(conn.commands) == 1 and conn.commands[0].endswith(" app:1 app:2")
    assert paths.dirs == ("/d/a/diff", "/d/base/diff", "/d/b/diff")  # the shared base layer once
    with pytest.raises(cache.CacheError, match="1 storage description"):
        cache.docker_paths(Builder(lines=1), images)  # an image the daemon no longer has

def test_view_script_passes_label_values_as_data(tmp_path):
    """Chain ids and snapshotter names come from containerd's labels: quoted, they stay one
    argument each and run nothing (a real sh, a fake ctr that records its argv)."""
    import json
    import os
    import subprocess

    log = tmp_path / "ctr.argv"
    fake = tmp_path / "ctr"
    fake.write_text(f"#!/bin/sh\npython3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \"$@\" >> {log}\n")
    fake.chmod(0o755)
    marker = tmp_path / "pwned"
    hostile = f"sha256:x; touch {marker}"
    script = cache.view_script({hostile: "overlayfs$(touch " + str(marker) + ")"})
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0][-1] == hostile and calls[0][4] == f"overlayfs$(touch {marker})"
    assert [c[5] for c in calls] == ["view", "rm"]
    assert cache.split_views(out.stdout) == {hostile: ""}


def test_an_unreadable_runtime_layout_is_a_warning_not_a_failed_bake():
    from bake.model.config import PoolConfig
    from bake.model.refs import parse_reference
    from bake.progress import NullReporter
    from bake.model.images import ResolvedImage
    from bake.ssh import Result
    from support.states import plan_for, state_for
    from bake.steps.cache import StepCache

    class DockerOnContainerdStore:  # docker inspect names no layer directories
        commands: list[str] = []

        def run(self, command: str, **kw: object) -> Result:
            self.commands.append(command)
            return Result(command, '{"Data": null, "Name": "overlayfs"}\n', "", 0)

    events = []

    class Recorder(NullReporter):
        def emit(self, kind: str, message: str, **kw: object) -> None:
            events.append((kind, message))

    pool = PoolConfig(name="cpu", base_ami="ami-ekslinux", images=["python:3"], runtime="docker")
    st = state_for(plan_for(pool, [ResolvedImage(parse_reference("python:3"), "sha256:" + "a" * 64, None)]),
                   reporter=Recorder())
    st.conn = DockerOnContainerdStore()
    StepCache().run(st)
    assert st.record.cache_bytes is None
    assert any(k == "warn" and "prewarm unit is not installed" in m for k, m in events)
    assert not any("prewarm" in c for c in st.conn.commands)  # nothing installed


def _fake_ctr(tmp_path, body: str):
    """A ctr on PATH that logs its argv (one JSON list a line) and then runs ``body``."""
    log = tmp_path / "ctr.argv"
    fake = tmp_path / "ctr"
    # One os.write per line on an O_APPEND descriptor: the views run at once, and their lines must not interleave.
    logger = ("import json,os,sys; os.write(os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND|os.O_CREAT), "
              "(json.dumps(sys.argv[2:]) + chr(10)).encode())")
    fake.write_text(f"#!/bin/sh\npython3 -c '{logger}' {log} \"$@\"\n{body}\n")
    fake.chmod(0o755)
    return log


def _run_views(tmp_path, tops):
    import os
    import subprocess

    return subprocess.run(["sh", "-c", cache.view_script(tops)], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})


def test_view_script_prints_every_view_in_order_and_removes_them_in_one_call(tmp_path):
    import json

    log = _fake_ctr(tmp_path, 'case "$6" in view) echo "[\\"mounts of $9\\"]";; esac')
    tops = {f"sha256:{c * 4}": "overlayfs" for c in "dcba"}
    out = _run_views(tmp_path, tops)
    assert out.returncode == 0, out.stderr
    assert cache.split_views(out.stdout) == {chain: f'["mounts of {chain}"]\n' for chain in sorted(tops)}
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    views = [c[7] for c in calls if c[5] == "view"]
    assert [sorted(c[6:]) for c in calls if c[5] == "rm"] == [sorted(views)]  # one rm, every view's key


def test_view_script_removes_each_view_when_one_is_gone_and_fails_when_a_view_fails(tmp_path):
    import json

    # rm stops at a key that is gone (containerd's GC took it): the others are removed one by one.
    log = _fake_ctr(tmp_path, 'case "$6" in view) [ "$9" = sha256:bad ] && exit 1; echo "[]";; '
                              'rm) [ $# -gt 7 ] && exit 1;; esac')
    out = _run_views(tmp_path, {"sha256:one": "overlayfs", "sha256:two": "overlayfs"})
    assert out.returncode == 0, out.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    views = sorted(c[7] for c in calls if c[5] == "view")
    assert sorted(map(sorted, (c[6:] for c in calls if c[5] == "rm"))) == sorted([views, [views[0]], [views[1]]])
    log.unlink()
    out = _run_views(tmp_path, {"sha256:bad": "overlayfs", "sha256:good": "overlayfs"})
    assert out.returncode != 0  # the bake fails, as before
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c[7] for c in calls if c[5] == "view"} == {k for c in calls if c[5] == "rm" for k in c[6:]}
