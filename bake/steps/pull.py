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
from bake.pull_progress import PullProgress, human
from bake.references import references
from bake.runtimes import TRANSIENT, Answer, Runtime
from bake.ssh import ConnectionLost, UnexpectedExit
from bake.steps.base import BuildState

PULL_TIMEOUT = 3600.0
BACKOFF = 2.0
PROGRESS_EVERY = 1.0
# What containerd and dockerd say when a write fails with ENOSPC. Never worth a retry.
DISK_FULL = re.compile(r"no space left on device", re.IGNORECASE)


def free_bytes(st: BuildState, path: str) -> int | None:
    """Space left for ``path`` on the builder (``df``), or None when it cannot be asked."""
    try:
        out = st.conn.run(f"sudo -n df -P -B1 {shlex.quote(path)}", warn=True, timeout=60).stdout
        return int(out.splitlines()[-1].split()[3])
    except (BakeError, IndexError, ValueError):
        return None


def disk_full(st: BuildState, runtime: Runtime, image: ResolvedImage, reason: str) -> BakeError:
    name = image.ref.original
    free = free_bytes(st, runtime.data_root)
    compressed = st.plan.image_sizes.get(name)
    need = f"about {gib(needed_bytes(compressed))} ({gib(compressed)} compressed)" if compressed else "unknown"
    size = st.plan.root_volume_gib
    return BakeError(
        f"image {name}: the builder's disk is full: {reason.strip().splitlines()[-1] if reason.strip() else 'ENOSPC'}; "
        f"free on {runtime.data_root}: {gib(free) if free is not None else 'unknown'}, this image needs {need}"
        f"{f' of a {size} GiB root volume' if size else ''}; raise root_volume_size in bake.toml"
    )


def gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.2f} GiB"


def name_for_kubelet(st: BuildState, runtime: Runtime, image: ResolvedImage) -> None:
    # A tag re-pushed after it was resolved: the pull fetched other content than the lock
    # will record. Refuse before naming it repo@digest, which would make it look right.
    if (pulled := runtime.pulled_digests(st.conn, image)) and image.digest not in pulled:
        raise BakeError(f"the runtime does not hold the resolved digests: {image.ref.original} (want {image.digest}, "
                        f"found {', '.join(sorted(pulled))}); the tag moved after it was resolved: build again")
    aliases = st.plan.aliases.get(image.ref.original, [])
    st.record.image_ids[image.ref.original] = runtime.add_references(st.conn, image, aliases)


def pull_one(st: BuildState, runtime: Runtime, image: ResolvedImage, abort: threading.Event, *,
             cached: bool = True) -> None:
    """Pull one image; a ``cached`` one is held to its resolved digest and named as the
    kubelet will ask for it (an image only used during the bake, like the GPU check's, is not)."""
    name = image.ref.original
    attempts = st.plan.pool.pull_retries + 1
    for attempt in range(1, attempts + 1):
        st.run.cancel.check()
        if abort.is_set():
            return
        started = time.monotonic()
        st.emit("image", "pulling", image=name, status="started")
        progress = ProgressEvents(st, name)
        try:
            runtime.pull(st.conn, image, PULL_TIMEOUT, on_progress=progress)
            if cached:
                name_for_kubelet(st, runtime, image)
            st.emit("image", f"pulled in {time.monotonic() - started:.1f}s", image=name, status="done", data=progress.final())
            return
        except ConnectionLost as e:
            reason, transient = str(e), True
            try:
                st.conn.reconnect(st.plan.pool.ssh_timeout)
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
        st.run.cancel.sleep(delay)


class ProgressEvents:
    """A pulling image's bytes done of its total and its rate, as ``image`` events with status
    ``progress``, at most one every PROGRESS_EVERY seconds (ctr redraws ten times a second)."""

    def __init__(self, st: BuildState, name: str):
        self.st, self.name = st, name
        self.last = 0.0
        self.latest: PullProgress | None = None

    def final(self) -> dict[str, int | None]:
        """The last figures ctr printed (the whole image), for the ``done`` event."""
        p = self.latest
        return {"bytes": p.done, "total": p.total} if p else {}

    def __call__(self, p: PullProgress) -> None:
        if p.total is None:  # ctr has not listed the layers' sizes yet: the registry's figure
            p.total = self.st.plan.image_sizes.get(self.name)
        self.latest = p
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        of = f" of {human(p.total)}" if p.total else ""
        self.st.emit("image", f"pulling: {human(p.done)}{of}, {human(p.rate)}/s", image=self.name, status="progress",
                     data={"bytes": p.done, "total": p.total, "rate": round(p.rate)})


class StepPull:
    name = "pull"
    title = "pulling images"

    def run(self, st: BuildState) -> None:
        runtime = st.container_runtime()
        creds = {img.credential.registry: img.credential for img in st.plan.images if img.credential}
        for cred in creds.values():
            runtime.login(st.conn, cred)
        started = time.monotonic()
        abort = threading.Event()  # one image failed: the bake fails, start no more pulls
        p = st.plan.pool
        with ThreadPoolExecutor(max_workers=p.pull_concurrency, thread_name_prefix=f"pull-{p.name}") as pool:
            futures = [pool.submit(pull_one, st, runtime, img, abort) for img in st.plan.images]
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
        st.emit("step", f"pulled {len(st.plan.images)} image(s) in {time.monotonic() - started:.1f}s", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # the images live on the builder's disk: terminating it is their undo


class StepNodeShape:
    """Leave the images as the node's containerd keeps them (compressed layers discarded once
    unpacked: ``Runtime.discard_compressed``), before verify proves every reference still
    answers and before the cache is measured."""

    name = "node-shape"
    title = "discarding the unpacked images' compressed layers"

    def run(self, st: BuildState) -> None:
        removed = st.container_runtime().discard_compressed(st.conn, st.plan.images)
        if removed:
            st.emit("step", f"discarded {removed} compressed layer blob(s), as a node's containerd does "
                            "(discard_unpacked_layers)", step=self.name, data={"discarded": removed})

    def cleanup(self, st: BuildState) -> None:
        pass


class StepVerify:
    """Ask the node's runtime what the kubelet will ask: containerd through the CRI
    (ImageStatus on its socket), dockerd through `docker image inspect`. Every reference of
    every image must be found, as the same image, holding the resolved digest."""

    name = "verify"
    title = "verifying the images on the builder"

    def run(self, st: BuildState) -> None:
        runtime = st.container_runtime()
        aliases, ids = st.plan.aliases, st.record.image_ids
        wanted = {
            img.ref.original: references(img, aliases.get(img.ref.original, []), ids.get(img.ref.original),
                                         digest_aliases=runtime.digest_aliases)
            for img in st.plan.images
        }
        answer = runtime.lookup(st.conn, [r for refs in wanted.values() for r in refs])
        problems = [p for img in st.plan.images for p in _problems(img, wanted[img.ref.original], st, answer)]
        where = runtime.verifier
        if problems:
            raise BakeError(f"{where} ({answer.runtime} {answer.version}) does not find what the kubelet may ask for: "
                            + "; ".join(problems))
        st.record.runtime_version = f"{answer.runtime} {answer.version}"
        count = sum(map(len, wanted.values()))
        st.emit("step", f"{where} finds all {len(st.plan.images)} image(s) under {count} reference(s) "
                        f"(tag, digest, image id, {sum(map(len, st.plan.aliases.values()))} alias(es))", step=self.name)
        if runtime.reports_pins:
            self._pinned(st, runtime, answer, wanted)

    def _pinned(self, st: BuildState, runtime: Runtime, answer: Answer, wanted: dict[str, list[str]]) -> None:
        """The CRI's answer decides whether the cache is pinned; the runtime says what that means."""
        problem = runtime.pin_problem(answer, not_pinned(answer, wanted))
        if problem is None:
            st.emit("step", f"{runtime.verifier} reports all {len(wanted)} image(s) pinned: the kubelet's image GC leaves them",
                    step=self.name)
            return
        message, fatal = problem
        if fatal:
            raise BakeError(message)
        st.emit("warn", message, step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass


def not_pinned(answer: Answer, wanted: dict[str, list[str]]) -> list[str]:
    """The images (by their first reference) the CRI does not report pinned."""
    return [refs[0] for refs in wanted.values() if not (found := answer.images.get(refs[0])) or not found.pinned]


def _problems(img: ResolvedImage, refs: list[str], st: BuildState, answer: Answer) -> list[str]:
    want_id = st.record.image_ids.get(img.ref.original)
    out = []
    for ref in refs:
        found = answer.images.get(ref)
        if found is None:
            out.append(f"{ref} (not present)")
        elif want_id and found.id != want_id:
            out.append(f"{ref} (is {found.id}, not {img.ref.original}'s {want_id})")
    primary = answer.images.get(refs[0])
    if primary and img.digest not in {d.rpartition("@")[2] for d in primary.repo_digests}:
        out.append(f"{refs[0]} holds {', '.join(primary.repo_digests) or 'no digest'}, not the resolved {img.digest}")
    return out
