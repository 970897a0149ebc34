"""Pull the pool's images into the builder's runtime, several at once, with retries."""

from __future__ import annotations

import re
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bake.disk import needed_bytes
from bake.errors import BakeError
from bake.model.images import ResolvedImage
from bake.runtimes import TRANSIENT, Runtime, runtime_for
from bake.ssh import ConnectionLost, UnexpectedExit
from bake.steps.base import BuildState

PULL_TIMEOUT = 3600.0
BACKOFF = 2.0
# What containerd and dockerd say when a write fails with ENOSPC. Never worth a retry.
DISK_FULL = re.compile(r"no space left on device", re.IGNORECASE)


def free_bytes(st: BuildState, path: str) -> int | None:
    """Space left for ``path`` on the builder (``df``), or None when it cannot be asked."""
    try:
        out = st.conn.run(f"df -P -B1 {shlex.quote(path)}", warn=True, timeout=60).stdout
        return int(out.splitlines()[-1].split()[3])
    except (BakeError, IndexError, ValueError):
        return None


def disk_full(st: BuildState, runtime: Runtime, image: ResolvedImage, reason: str) -> BakeError:
    name = image.ref.original
    free = free_bytes(st, runtime.data_root)
    compressed = st.image_sizes.get(name)
    need = f"about {gib(needed_bytes(compressed))} ({gib(compressed)} compressed)" if compressed else "unknown"
    size = st.pool.root_volume_size or st.root_volume_gib
    return BakeError(
        f"image {name}: the builder's disk is full: {reason.strip().splitlines()[-1] if reason.strip() else 'ENOSPC'}; "
        f"free on {runtime.data_root}: {gib(free) if free is not None else 'unknown'}, this image needs {need}"
        f"{f' of a {size} GiB root volume' if size else ''}; raise root_volume_size in bake.toml"
    )


def gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.2f} GiB"


def pull_one(st: BuildState, runtime: Runtime, image: ResolvedImage, abort: threading.Event) -> None:
    name = image.ref.original
    attempts = st.pool.pull_retries + 1
    for attempt in range(1, attempts + 1):
        st.cancel.check()
        if abort.is_set():
            return
        started = time.monotonic()
        st.emit("image", "pulling", image=name, status="started")
        try:
            runtime.pull(st.conn, image, PULL_TIMEOUT)
            st.emit("image", f"pulled in {time.monotonic() - started:.1f}s", image=name, status="done")
            return
        except ConnectionLost as e:
            reason, transient = str(e), True
            try:
                st.conn.reconnect(st.pool.ssh_timeout)
            except BakeError as again:
                raise BakeError(f"image {name}: {e}; reconnecting failed: {again}") from None
        except UnexpectedExit as e:
            reason = e.result.tail(600) or str(e)
            if DISK_FULL.search(reason):
                raise disk_full(st, runtime, image, reason) from None
            transient = bool(TRANSIENT.search(reason))
        if not transient or attempt == attempts:
            raise BakeError(
                f"image {name} could not be pulled from {image.ref.registry}"
                f"{f' after {attempt} attempts' if attempt > 1 else ''}: {reason}"
            )
        delay = BACKOFF * 2 ** (attempt - 1)
        st.emit("image", f"attempt {attempt} failed ({reason.splitlines()[-1] if reason else '?'}), retrying in {delay:.0f}s",
                image=name, status="retry")
        st.cancel.sleep(delay)


class StepPull:
    name = "pull"
    title = "pulling images"

    def run(self, st: BuildState) -> None:
        runtime = runtime_for(st.pool.runtime)
        creds = {img.credential.registry: img.credential for img in st.images if img.credential}
        for cred in creds.values():
            runtime.login(st.conn, cred)
        started = time.monotonic()
        abort = threading.Event()  # one image failed: the bake fails, start no more pulls
        with ThreadPoolExecutor(max_workers=st.pool.pull_concurrency, thread_name_prefix=f"pull-{st.pool.name}") as pool:
            futures = [pool.submit(pull_one, st, runtime, img, abort) for img in st.images]
            errors = []
            for f in futures:
                try:
                    f.result()
                except BakeError as e:
                    errors.append(str(e))
                    abort.set()
        if errors:
            raise BakeError("; ".join(errors))
        for registry in creds:
            runtime.logout(st.conn, registry)
        st.emit("step", f"pulled {len(st.images)} image(s) in {time.monotonic() - started:.1f}s", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # the images live on the builder's disk: terminating it is their undo


class StepVerify:
    name = "verify"
    title = "verifying the images on the builder"

    def run(self, st: BuildState) -> None:
        runtime = runtime_for(st.pool.runtime)
        present = runtime.digests(st.conn, st.images)
        missing = [
            f"{img.ref.original} (want {img.digest}, found {', '.join(sorted(present.get(img.ref.original, ()))) or 'nothing'})"
            for img in st.images
            if img.digest not in present.get(img.ref.original, set())
        ]
        if missing:
            raise BakeError(f"the runtime does not hold the resolved digests: {'; '.join(missing)}")
        st.emit("step", f"all {len(st.images)} digest(s) present in {runtime.name}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass
