"""``build --keep-on-failure``: after a failed step, leave the builder, its group and key pair
running for debugging, tagged so that ``sweep`` removes them on its next run whatever their age,
and say how to log in (the private key is written once, mode 0600, to the run directory)."""

from __future__ import annotations

from bake import tags
from bake.model.times import iso_utc
from bake.rundir import login_command
from bake.steps.base import BuildState
from bake.steps.connect import builder_address


def keep_builder(st: BuildState, error: Exception) -> None:
    if not st.run.keep_on_failure or not st.instance_id or st.run.dir is None:
        return
    try:
        host, port = st.ssh_address or builder_address(st)
        now = iso_utc()
        st.ec2.create_tags(Resources=[r for r in (st.instance_id, st.security_group_id) if r],
                           Tags=[{"Key": tags.KEY_KEPT, "Value": now}])
        command = login_command(st, host, port)
    except Exception as e:  # noqa: BLE001 - keeping is best effort: the normal undo then runs
        st.emit("warn", f"--keep-on-failure: cannot keep the builder ({e}); removing it as usual", step="keep")
        return
    st.kept = True
    st.emit(
        "warn",
        f"kept builder {st.instance_id}, security group {st.security_group_id} and key pair {st.key_name} "
        f"after the failure, for debugging. Log in with: {command}   "
        "Remove them with: python -m bake sweep --yes",
        step="keep", status="kept",
        data={"instance_id": st.instance_id, "security_group_id": st.security_group_id, "key_name": st.key_name,
              "ssh": command, "run_dir": str(st.run.dir.path)},
    )
