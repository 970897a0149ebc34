"""Measure what the images occupy on the builder and, for pools with ``prewarm``, bake in the
boot-time unit that reads exactly those files (bake/prewarm/). Runs after verify, before the
scrub; what it writes lives under /etc, which the scrub keeps."""

from __future__ import annotations

from bake import cache, prewarm
from bake.steps.base import BuildState


class StepCache:
    name = "cache"
    title = "measuring the images' files on disk"

    def run(self, st: BuildState) -> None:
        try:
            paths = st.container_runtime().cache_paths(st.conn, st.plan.images)
        except cache.CacheError as e:
            # A runtime layout this tool does not know (e.g. Docker on containerd's image store):
            # the AMI is still good; it only lacks the figure and the prewarm.
            st.emit("warn", f"cannot find the images' files on the builder ({e}): cache_bytes is not recorded "
                            "and the prewarm unit is not installed", step=self.name)
            return
        st.record.cache_bytes = cache.measure(st.conn, paths)
        st.emit("step", f"the images occupy {st.record.cache_bytes} bytes on disk ({len(paths.files)} blobs, "
                        f"{len(paths.dirs)} layer directories)", step=self.name, data={"cache_bytes": st.record.cache_bytes})
        # The unit lives on the root disk: a data-volume pool's nodes boot their stock AMI without it.
        if st.plan.pool.prewarm and st.plan.pool.cache == "ami":
            st.conn.run("sudo -n sh -s", stdin=prewarm.install_script(prewarm.files(paths.listing())), timeout=120,
                        shown=f"install and enable {prewarm.UNIT_NAME}")
            st.emit("step", f"prewarm unit {prewarm.UNIT_NAME} installed and enabled", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        pass  # files on the builder's disk: terminating it is their undo
