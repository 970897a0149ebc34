"""The prewarm script and unit (bake/prewarm/), run in a real sh: what it reads and logs, that it
never fails, and that the files reach the builder intact through their install commands."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

from bake import prewarm

SCRIPT = Path(prewarm.__file__).with_name("prewarm.sh")


def run_script(listing: Path | None, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREWARM_LIST": str(listing or tmp_path / "absent.list"), "PREWARM_PARALLEL": "3"}
    return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def read_figures(out: str) -> tuple[int, int]:
    m = re.search(r"read (\d+) bytes in (\d+) files in [\d.]+ s", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_reads_listed_files_and_every_file_under_listed_dirs(tmp_path):
    layer = tmp_path / "snapshots" / "7" / "fs"
    (layer / "usr" / "lib").mkdir(parents=True)
    (layer / "usr" / "lib" / "big.so").write_bytes(b"x" * 300_000)
    (layer / "a file with spaces").write_bytes(b"y" * 1000)
    (layer / "link").symlink_to("usr/lib/big.so")  # not followed: the target is read once
    blob = tmp_path / "blobs" / "sha256" / "abc"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"z" * 5000)
    outside = tmp_path / "not-listed"
    outside.write_bytes(b"n" * 777)
    listing = tmp_path / "prewarm.list"
    listing.write_text(f"f {blob}\nd {layer}\n")
    out = run_script(listing, tmp_path)
    assert out.returncode == 0, out.stderr
    assert read_figures(out.stdout) == (306_000, 3)


def test_missing_list_directory_or_file_is_logged_and_exits_0(tmp_path):
    out = run_script(None, tmp_path)
    assert out.returncode == 0
    assert "no list at" in out.stdout
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_bytes(b"1" * 10)
    listing = tmp_path / "prewarm.list"
    listing.write_text(f"d {tmp_path}/gone\nf {tmp_path}/gone.blob\nd {real}\n")
    out = run_script(listing, tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"missing directory: {tmp_path}/gone" in out.stderr
    assert f"missing file: {tmp_path}/gone.blob" in out.stderr
    assert read_figures(out.stdout) == (10, 1)


def test_unit_runs_in_the_background_at_idle_priority_and_never_fails_the_boot():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(prewarm.packaged(prewarm.UNIT_NAME))
    assert "Before" not in unit["Unit"]  # nothing waits for it: not the kubelet, not containerd
    svc = unit["Service"]
    assert svc["Type"] == "simple"
    assert svc["ExecStart"] == f"-/bin/sh {prewarm.SCRIPT}"  # "-": a failure is ignored
    assert (svc["IOSchedulingClass"], svc["Nice"]) == ("idle", "19")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_install_script_writes_the_files_intact_and_links_the_unit(tmp_path):
    root = tmp_path / "a dir; touch pwned"
    listing = "f /var/lib/containerd/x\nd /var/lib/containerd/y z/fs\n$(touch pwned) `touch pwned`"  # no final newline
    written = [prewarm.RemoteFile(str(root) + f.path, f.mode, f.content) for f in prewarm.files(listing)]
    script = prewarm.install_script(written, str(root) + prewarm.UNIT, str(root) + prewarm.WANTS)
    subprocess.run(["sh", "-s"], input=script, text=True, check=True, cwd=tmp_path)
    for f in written:
        assert Path(f.path).read_text() == f.content
        assert oct(Path(f.path).stat().st_mode & 0o777) == "0o" + f.mode.lstrip("0")
    assert not (tmp_path / "pwned").exists()
    assert (root / prewarm.LIST.lstrip("/")).read_text() == listing
    assert os.readlink(root / prewarm.WANTS.lstrip("/")) == str(root) + prewarm.UNIT
    assert not list(root.rglob("*.tmp.*"))  # each written atomically, nothing left over