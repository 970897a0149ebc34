"""The sandbox itself: ``Sandbox.up()`` starts (or finds running) a moto server, a CA in the system
trust store, containerd and dockerd, a TLS registry of sample images, an ECR look-alike on
127.0.0.1:443 and the builder host (ec2-user over real sshd, inside an overlay). ``down()`` undoes
all of it. Each component has its own module; this one only orders them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bake_sandbox import (
    bottlerocket, builder, discard, first_boot, hosts, images, moto, moto_volumes, node_containerd, overlay, registries, runtimes,
    sample_config, tls,
)
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import (
    ACCOUNT, BASE_AMI, BASE_AMI_PARAMETER, CREDENTIALS, ECR_HOST, ECR_USER, HOST, REGION, SSH_USER, SYSTEM_CA_BUNDLE, Layout,
)
from bake_sandbox.overlay import Change

__all__ = ["Sandbox", "SandboxInfo", "SandboxError", "Change"]


@dataclass(frozen=True)
class SandboxInfo:
    """Where everything is: what a test or the demo needs to talk to the sandbox."""

    state_dir: Path
    moto_endpoint: str  # http://127.0.0.1:45000
    region: str
    account: str
    ssh_host: str  # "127.0.0.1:45022", as bake.toml's ssh_host
    ssh_user: str
    ssh_host_key: str  # the builder's public host key, "ssh-ed25519 AAAA… comment"
    registry: str  # "127.0.0.1:45443"
    ecr_registry: str  # "123456789012.dkr.ecr.us-east-1.amazonaws.com" (port 443)
    images: list[str]  # the sample registry's images
    ecr_images: list[str]  # the ECR look-alike's images
    base_ami_ssm_parameter: str
    base_ami: str
    overlay_upper: Path  # upper dirs root: overlay_upper/etc, /var, /home, /root
    config_path: Path  # STATE/bake.toml
    ca_cert: Path
    digests: dict[str, str] = field(default_factory=dict)  # image ref -> manifest digest (after up())

    @property
    def ssh_endpoint(self) -> tuple[str, int]:
        host, _, port = self.ssh_host.rpartition(":")
        return host, int(port)


class Sandbox:
    """The sandbox in one state dir (default /var/lib/bake-sandbox, env BAKE_SANDBOX_DIR)."""

    def __init__(self, state_dir: str | Path | None = None, image_count: int | None = None,
                 image_mb: float | None = None):
        self.layout = Layout.from_env(state_dir)
        self.samples = images.SampleSet.from_env(image_count, image_mb)
        self._digests: dict[str, str] = {}
        self._pushed: list[discard.Pushed] = []  # push_image's, in order; ``discard_pushed`` gives them back
        # Whole seconds, as ``ctr leases ls`` shows them: a lease taken in this second still counts.
        self._since = datetime.now(timezone.utc).replace(microsecond=0)

    @property
    def info(self) -> SandboxInfo:
        lay = self.layout
        try:
            host_key = builder.host_public_key(lay)
        except OSError:
            host_key = ""
        return SandboxInfo(
            state_dir=lay.root, moto_endpoint=lay.moto_endpoint, region=REGION, account=ACCOUNT,
            ssh_host=lay.ssh_host, ssh_user=SSH_USER, ssh_host_key=host_key, registry=lay.registry,
            ecr_registry=ECR_HOST, images=self.samples.images(lay), ecr_images=self.samples.ecr_images(),
            base_ami_ssm_parameter=BASE_AMI_PARAMETER, base_ami=BASE_AMI, overlay_upper=lay.overlay_upper,
            config_path=lay.config_path, ca_cert=tls.ca_cert(lay), digests=dict(self._digests),
        )

    def up(self, log: Callable[[str], None] | None = None) -> SandboxInfo:
        """Start whatever is not running; idempotent. ``log(message)`` hears each step."""
        say = log or (lambda message: None)
        lay = self.layout
        if os.geteuid() != 0:
            raise SandboxError("the sandbox needs root (it installs a CA, edits /etc/hosts, starts daemons)")
        lay.ensure()
        steps = [
            ("moto server", lambda: moto.start(lay)),
            # Before the runtimes: Go reads the system roots once, when a daemon starts.
            ("CA in the system trust store", lambda: (tls.ensure(lay), tls.install(lay))),
            (f"{ECR_HOST} in /etc/hosts", lambda: hosts.add(ECR_HOST, HOST)),
            ("containerd and dockerd", lambda: runtimes.start(lay)),
            ("registries", lambda: registries.start(lay, moto.ecr_password(lay))),
            ("sample images", self._push_samples),
            ("builder (ec2-user over sshd)", lambda: builder.start(lay)),
            ("Bottlerocket admin container stand-in (sshd)", lambda: bottlerocket.start(lay)),
            ("bake.toml", lambda: sample_config.write(lay, self.samples.images(lay), self.samples.ecr_images())),
        ]
        for what, step in steps:
            t0 = time.monotonic()
            step()
            say(f"{what}: ready ({time.monotonic() - t0:.1f}s)")
        return self.info

    def _push_samples(self) -> None:
        self._digests = images.push_samples(self.layout, self.samples, moto.ecr_password(self.layout))

    def down(self, log: Callable[[str], None] | None = None, purge: bool = False) -> None:
        """Stop every process ``up`` started; remove the hosts line, the CA and the sudoers entry.

        Keeps the state dir (CA, registry storage), so the next ``up`` is fast; the builder's
        overlay is wiped so the next ``up`` gives a fresh builder. ``purge`` also gives the disk
        back: every image pulled from the sandbox's registries leaves containerd and dockerd
        (whoever started them), and the registries' storage is deleted (the next ``up`` pushes
        the samples again). Errors are collected, not stopping the rest: a half-down sandbox is
        worse than a reported failure.
        """
        say = log or (lambda message: None)
        lay = self.layout
        errors: list[str] = []
        # Purging: the images while the runtimes still run, the storage once the registries stopped.
        purge_images = [("images from the sandbox's registries in containerd and dockerd",
                         lambda: say(f"removed {len(discard.forget_hosts(lay, {lay.registry, ECR_HOST}))} image name(s)"))]
        purge_storage = [("registry storage", lambda: (registries.remove_storage(lay), images.clean(lay)))]
        # Purging first: the node's containerd is reached through the builder's namespace.
        steps = [
            *(purge_images if purge else []),
            ("Bottlerocket admin container stand-in", lambda: bottlerocket.stop(lay)),
            ("builder", lambda: (builder.stop(lay), overlay.wipe(lay), builder.remove_sudoers())),
            ("registries", lambda: registries.stop(lay)),
            *(purge_storage if purge else []),
            ("containerd and dockerd", lambda: runtimes.stop(lay)),
            ("moto server", lambda: moto.stop(lay)),
            # its volumes' loop devices and files: moto forgot them (bake_sandbox.moto_volumes)
            ("data volumes", lambda: moto_volumes.Store(moto.volumes_dir(lay)).release_stale()),
            ("/etc/hosts line", hosts.remove),
            ("CA", tls.uninstall),
        ]
        for what, step in steps:
            try:
                step()
                say(f"{what}: stopped/removed")
            except Exception as e:  # noqa: BLE001 - keep tearing down, report at the end
                errors.append(f"{what}: {e}")
        if errors:
            raise SandboxError("down left something behind:\n  " + "\n  ".join(errors))

    def status(self) -> dict[str, str]:
        """Component name -> "up" / "down" (or "up (not started by the sandbox)")."""
        lay = self.layout
        out = {"moto": "up" if moto.status(lay) else "down",
               "ca": "installed" if tls.trusted() else "absent",
               "hosts": "present" if hosts.present(ECR_HOST, HOST) else "absent"}
        out.update(runtimes.status(lay))
        out.update(registries.status(lay))
        out["sshd"] = builder.status(lay)
        out["sshd (Bottlerocket admin container)"] = bottlerocket.status(lay)
        return out

    def is_up(self) -> bool:
        """Every component serving; the node's containerd may be stopped (a fresh AMI's is)."""
        return all(v.startswith("up") or v in ("installed", "present") or (k == "node containerd" and v != "down")
                   for k, v in self.status().items())

    def env(self) -> dict[str, str]:
        """What a shell or a test needs to point boto3, terraform and bake at the sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.layout.moto_endpoint,
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # Python bundles its own roots (certifi): point it at the system bundle, which holds the CA.
            "SSL_CERT_FILE": SYSTEM_CA_BUNDLE,
            "REQUESTS_CA_BUNDLE": SYSTEM_CA_BUNDLE,
            "AWS_CA_BUNDLE": SYSTEM_CA_BUNDLE,
            "BAKE_SANDBOX_DIR": str(self.layout.root),
        }

    def client(self, service: str, region: str = REGION):  # noqa: ANN201 - a boto3 client
        return moto.client(self.layout, service, region)

    def ecr_credentials(self) -> tuple[str, str]:
        """(user, password) the ECR look-alike accepts: moto's GetAuthorizationToken."""
        return ECR_USER, moto.ecr_password(self.layout)

    def push_image(self, repository: str, tag: str, size_mb: float = 1, seed: int | None = None,
                   env: tuple[str, ...] = ()) -> str:
        """Push a new (or changed) image and return its manifest digest.

        ``repository`` is "env/app-1" (the sample registry) or a full "HOST[:PORT]/NAME" (the ECR
        look-alike gets moto's credentials). No ``seed``: random content, so a tag always changes.
        """
        first = repository.split("/", 1)[0]
        if "/" in repository and ("." in first or ":" in first or first == "localhost"):
            ref = f"{repository}:{tag}"
        else:
            ref = f"{self.layout.registry}/{repository}:{tag}"
        auth = self.ecr_credentials() if ref.startswith(ECR_HOST + "/") else None
        seed = images.random_seed() if seed is None else seed
        digest = images.push(self.layout, ref, size_mb, seed, auth=auth, skip_if_present=False, env=env)
        self._digests[ref] = digest
        self._pushed.append(discard.Pushed(ref, digest, auth))
        return digest

    def discard_pushed(self, refs: list[str] | None = None) -> list[str]:
        """Remove images ``push_image`` pushed (``refs``, or all of them) from the registries,
        containerd and dockerd, under every name a bake gave them, and the leases of pulls cut
        off since this object was made; return what the runtimes held. Their registry blobs are
        freed by ``collect_registry_garbage``. Nothing else may pull from this containerd meanwhile."""
        chosen = [p for p in self._pushed if refs is None or p.ref in refs]
        removed = discard.discard(self.layout, chosen, leases_since=self._since)
        self._pushed = [p for p in self._pushed if p not in chosen]
        for p in chosen:
            self._digests.pop(p.ref, None)
        return removed

    def collect_registry_garbage(self) -> None:
        """Free the registries' unreferenced blobs (each registry restarts: nothing may push meanwhile)."""
        discard.collect_registry_garbage(self.layout, moto.ecr_password(self.layout))

    def first_boot(self, refs: list[str], version: str | None = None) -> first_boot.FirstBoot:
        """A node's first boot over the disk the last bake left (``first_boot``): what the CRI
        answers for ``refs`` and what the registries served meanwhile."""
        self._forget_gone_builders()
        return first_boot.first_boot(self.layout, refs, version or node_containerd.state(self.layout)["version"])

    def first_boot_from_snapshot(self, snapshot_id: str, refs: list[str], version: str | None = None,
                                 region: str = REGION, image_id: str | None = None) -> first_boot.FirstBoot:
        """A data-volume pool's node: its volume a copy of the cache snapshot (``first_boot_from_snapshot``);
        in ``region``, from ``image_id`` (a copy region's stock AMI)."""
        self._forget_gone_builders()
        return first_boot.first_boot_from_snapshot(self.layout, snapshot_id, refs,
                                                   version or node_containerd.state(self.layout)["version"],
                                                   region=region, image_id=image_id or BASE_AMI)

    def _forget_gone_builders(self) -> None:
        """What terminated instances still hold of the node's containerd goes (a bake killed
        before it stopped the runtime: on EC2 that machine is gone with it)."""
        running = self.client("ec2").describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        node_containerd.forget_gone_instances(self.layout, {i["InstanceId"] for r in running for i in r["Instances"]})

    def node_containerd(self, version: str | None = None, boot: str | None = None) -> None:
        """Switch the builder's containerd (``"2.1"``, ``"1.7"``) or the state it boots in
        (``"stopped"``, as an EKS AL2023 AMI; ``"running"``). Nothing may be baking."""
        node_containerd.use(self.layout, version=version, boot=boot)

    def node_containerd_state(self) -> dict:
        """{"version", "boot", "enabled"} of the builder's containerd, and whether it "running" now."""
        self._forget_gone_builders()
        return {**node_containerd.state(self.layout), "running": node_containerd.daemon(self.layout).running()}

    def overlay_changes(self) -> list[Change]:
        """Everything commands over SSH changed on the builder (see ``overlay.changes``)."""
        return overlay.changes(self.layout.overlay_upper)

    def deleted_paths(self) -> list[str]:
        """Paths deleted on the builder: whiteouts in the overlay's upper dirs."""
        return overlay.deleted(self.layout.overlay_upper)
