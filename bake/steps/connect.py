"""SSH into the builder, checking its host key by the pool's policy."""

from __future__ import annotations

from functools import partial

from bake import bottlerocket
from bake.errors import BakeError, UsageError
from bake.model.proxy_command import expand, shown
from bake.polling import Every, wait_until
from bake.proxy import ProxyProcess
from bake.ssh import Connection, HostKeyCheck, console_fingerprints
from bake.steps.base import BuildState

CONSOLE_POLL = 10.0


def builder_address(st: BuildState) -> tuple[str, int]:
    """(host, port) to connect to; with ssh_proxy_command only %h and %p, so the instance's
    private address or, failing that, its id stands in when it has no public one."""
    if endpoint := st.plan.pool.ssh_endpoint:
        return endpoint
    inst = st.ec2.describe_instances(InstanceIds=[st.instance_id])["Reservations"][0]["Instances"][0]
    key = "PublicIpAddress" if st.plan.pool.ssh_host == "public_ip" else "PrivateIpAddress"
    address = inst.get(key)
    if st.plan.pool.ssh_proxy_command:
        return address or inst.get("PrivateIpAddress") or st.instance_id, 22
    if not address:
        raise UsageError(
            f"pool {st.plan.pool.name}: builder {st.instance_id} has no {key}; use a subnet that assigns "
            "public addresses, or ssh_host = \"private_ip\" from inside the VPC"
        )
    return address, 22


def expected_fingerprints(st: BuildState) -> set[str] | None:
    """cloud-init prints the host keys' fingerprints on the console; None when it has not."""
    policy = st.plan.pool.host_key_policy
    if policy == "tofu":
        return None

    def printed() -> set[str] | None:
        out = st.ec2.get_console_output(InstanceId=st.instance_id, Latest=True).get("Output") or ""
        return console_fingerprints(out) or None

    def none_printed() -> set[str] | None:
        if policy == "console":
            raise BakeError(
                f"builder {st.instance_id} printed no SSH host key fingerprints on its console "
                f"within {st.plan.pool.ssh_timeout}s (host_key_policy = \"console\")"
            )
        return None

    # "console" waits for them; any other policy takes one look (a console that has them is used).
    timeout = st.plan.pool.ssh_timeout if policy == "console" else 0
    return wait_until(printed, Every(CONSOLE_POLL), st.run.cancel, timeout=timeout, on_timeout=none_printed, last_look=True)


class StepConnect:
    name = "connect"
    title = "connecting over SSH"

    def run(self, st: BuildState) -> None:
        host, port = builder_address(st)
        expected = expected_fingerprints(st)
        if expected:
            st.emit("step", f"verifying the host key against {len(expected)} console fingerprint(s)", step=self.name)

        def on_trust(fp: str) -> None:
            st.emit("warn", f"no host key fingerprints on the console: trusting {fp} on first use for this run", step=self.name)

        proxy = None
        via = ""
        if template := st.plan.pool.ssh_proxy_command:
            argv = expand(template, instance_id=st.instance_id, host=host, port=port, user=st.plan.pool.ssh_user)
            st.proxy_argv = argv
            via = f" through {shown(argv)}"
            proxy = partial(ProxyProcess, argv)
        st.host_key_check = HostKeyCheck(expected, on_trust)
        st.conn = Connection(host, port, st.plan.pool.ssh_user, st.private_key, st.host_key_check, st.run.cancel,
                             proxy=proxy, log=st.run.dir.logger(st) if st.run.dir else None,
                             on_host=bottlerocket.on_host if st.plan.pool.os == "bottlerocket" else None)
        stats = st.conn.open(
            st.plan.pool.ssh_timeout,
            on_retry=lambda err: st.emit("step", f"SSH not ready yet ({err}), retrying", step=self.name, status="retry"),
        )
        st.waited(stats, self.name)
        st.ssh_address = (host, port)
        st.emit("step", f"connected to {st.plan.pool.ssh_user}@{host}:{port}{via}", step=self.name)

    def cleanup(self, st: BuildState) -> None:
        if st.conn is not None:
            st.conn.close()
