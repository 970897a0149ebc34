"""The builder's copy-on-write view of the host: what commands run over SSH changed.

sshd runs in a private mount namespace where /etc, /home, /root and /var are overlays whose
upper dirs live in the state dir. Whatever a bake writes lands there; whatever it deletes shows
as a whiteout (a character device 0:0) there, and the host's own files stay untouched.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from bake_sandbox.layout import Layout

# /var last: the other upper dirs live under /var/lib/bake-sandbox by default, and an overlay's
# upper dir must be on a plain filesystem, not inside an overlay mounted before it.
OVERLAID = ("/etc", "/home", "/root", "/var")


@dataclass(frozen=True)
class Change:
    path: str  # absolute path as the builder sees it, e.g. "/etc/machine-id"
    kind: str  # "deleted" (a whiteout), "opaque" (a dir replaced as a whole), "dir" or "file"


def dirs(layout: Layout) -> dict[str, tuple[Path, Path]]:
    """Overlaid mount point -> (upper dir, work dir)."""
    return {m: (layout.overlay_upper / m.strip("/"), layout.overlay_dir / "work" / m.strip("/")) for m in OVERLAID}


def ensure(layout: Layout) -> None:
    layout.overlay_dir.mkdir(parents=True, exist_ok=True)
    layout.overlay_dir.chmod(0o700)
    for upper, work in dirs(layout).values():
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)


def mount_commands(layout: Layout) -> list[str]:
    cmds = []
    for mount_point, (upper, work) in dirs(layout).items():
        cmds.append(f"mount -t overlay overlay -o lowerdir={mount_point},upperdir={upper},workdir={work} {mount_point}")
    return cmds


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def changes(upper_root: Path) -> list[Change]:
    """Every entry in the upper dirs, as the builder-side path and what happened to it."""
    out: list[Change] = []
    if not upper_root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(upper_root):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            p = base / name
            st = p.lstat()
            rel = "/" + str(p.relative_to(upper_root))
            if is_whiteout(st):
                kind = "deleted"
            elif stat.S_ISDIR(st.st_mode):
                kind = "opaque" if _opaque(p) else "dir"
            else:
                kind = "file"
            out.append(Change(rel, kind))
    return sorted(out, key=lambda c: c.path)


def deleted(upper_root: Path) -> list[str]:
    """Paths the builder deleted (whiteouts), e.g. ["/etc/ssh/ssh_host_rsa_key"]."""
    return [c.path for c in changes(upper_root) if c.kind == "deleted"]


def _opaque(p: Path) -> bool:
    try:
        return os.getxattr(p, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def wipe(layout: Layout) -> None:
    """Forget every change (only while sshd, the overlays' one user, is stopped)."""
    shutil.rmtree(layout.overlay_dir, ignore_errors=True)
