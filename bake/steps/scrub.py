"""Leave nothing instance-specific or secret on the disk before the snapshot."""

from __future__ import annotations

from bake.runtimes import SCRUB_SCRIPT, sudo
from bake.steps.base import BuildState


class StepScrub:
    name = "scrub"
    title = "removing host keys, machine-id, credentials, history and logs"

    def run(self, st: BuildState) -> None:
        st.conn.run(sudo(SCRUB_SCRIPT), timeout=600, shown="pre-snapshot clean-up")
        # The temporary key is gone from the disk now; the session ends here.
        st.conn.close()

    def cleanup(self, st: BuildState) -> None:
        pass
