"""EC2's clock for the sandbox: an opt-in HTTP proxy in front of moto, plus a TCP gate in front
of the builder's sshd, that make state changes take the time they take on EC2.

moto runs an instance at once, stops and terminates it at once and makes an AMI available at
once, so a wait tested against it never waits. Behind this proxy (``AWS_ENDPOINT_URL`` pointed
at it) the answers to DescribeInstances / DescribeImages / DescribeSnapshots are rewritten from
the time each resource was asked for: an instance is ``pending`` for ``pending`` seconds after
RunInstances, ``stopping`` for ``stopping`` seconds after StopInstances, ``shutting-down`` for
``shutting_down`` seconds after TerminateInstances, and an AMI ``pending`` for ``ami_base`` plus
``ami_per_gib`` seconds per GiB of the builder's volumes (its snapshots' ``Progress`` grows
meanwhile). The SSH gate resets every connection until some instance launched through the
proxy is ``running`` (plus ``ssh_after_running``), as a booting instance's port does.

Nothing of this is known to the tool: it only sees a slower EC2. The shared sandbox's moto is
untouched; the clock is started on its own ports (``python -m bake_sandbox.ec2_clock`` or
``Ec2Clock(...).start()``), so other users of the sandbox keep moto's instant answers.
Default durations and their sources: docs/ec2-timing.md.
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

from bake_sandbox import http_relay as relay
from bake_sandbox.layout import CREDENTIALS, REGION

# moto reads the region from the credential scope and checks no signature.
AUTH = f"AWS4-HMAC-SHA256 Credential={CREDENTIALS['AWS_ACCESS_KEY_ID']}/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0"
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


@dataclass
class Timing:
    """Seconds each transition takes (docs/ec2-timing.md says where the defaults come from)."""

    pending: float = 17.0
    ssh_after_running: float = 0.0
    stopping: float = 11.0
    shutting_down: float = 7.0
    ami_base: float = 30.0
    ami_per_gib: float = 0.35

    @classmethod
    def instant(cls) -> Timing:
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass
class _Instance:
    launched: float
    stop_at: float | None = None
    terminate_at: float | None = None


@dataclass
class _Image:
    created: float
    duration: float
    snapshots: tuple[str, ...] = ()


class Ec2Clock:
    def __init__(self, upstream: str, timing: Timing | None = None, ssh_upstream: tuple[str, int] | None = None):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.timing = timing or Timing()
        self.instances: dict[str, _Instance] = {}
        self.images: dict[str, _Image] = {}
        # (resource id, state answered) -> [answers, monotonic time of the first]: how often a
        # client asked and when it first saw each state, for a benchmark's detection lag.
        self.answers: dict[tuple[str, str], list[float]] = {}
        self.ssh_refused = 0
        self.ssh_first_forward: float | None = None
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._threads = [threading.Thread(target=self._http.serve_forever, name="ec2-clock", daemon=True)]
        self._ssh_upstream = ssh_upstream
        self._gate: socket.socket | None = None
        if ssh_upstream:
            self._gate = socket.create_server(("127.0.0.1", 0))
            self._threads.append(threading.Thread(target=self._serve_gate, name="ec2-clock-ssh", daemon=True))

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def ssh_port(self) -> int | None:
        return self._gate.getsockname()[1] if self._gate else None

    def start(self) -> Ec2Clock:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._gate:
            self._gate.close()

    # -- the clock -------------------------------------------------------------------------
    def instance_state(self, instance_id: str, moto_state: str, now: float | None = None) -> str:
        """What EC2 would say now, given what moto says (moto has already finished)."""
        now = time.monotonic() if now is None else now
        t = self.timing
        with self._lock:
            inst = self.instances.get(instance_id)
        if inst is None:
            return moto_state
        if inst.terminate_at is not None:
            return "shutting-down" if now < inst.terminate_at + t.shutting_down else moto_state
        if inst.stop_at is not None:
            return "stopping" if now < inst.stop_at + t.stopping else moto_state
        if moto_state == "running" and now < inst.launched + t.pending:
            return "pending"
        return moto_state

    def ssh_open(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        ready = self.timing.pending + self.timing.ssh_after_running
        with self._lock:
            return any(i.stop_at is None and i.terminate_at is None and now >= i.launched + ready
                       for i in self.instances.values())

    def image_progress(self, image_id: str, now: float | None = None) -> float | None:
        """0..1 while the AMI is pending on the clock, None once available (or unknown)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            img = self.images.get(image_id)
        if img is None or img.duration <= 0 or now >= img.created + img.duration:
            return None
        return (now - img.created) / img.duration

    def simulated_delays(self) -> dict[str, float]:
        """Each clock-imposed delay in seconds, for a benchmark's accounting."""
        t = self.timing
        with self._lock:
            out: dict[str, float] = {}
            for iid, inst in self.instances.items():
                out[f"{iid} pending"] = t.pending
                if inst.stop_at is not None:
                    out[f"{iid} stopping"] = t.stopping
                if inst.terminate_at is not None:
                    out[f"{iid} shutting-down"] = t.shutting_down
            for image_id, img in self.images.items():
                out[f"{image_id} pending"] = img.duration
        return out

    def _answered(self, resource: str, state: str, now: float) -> None:
        with self._lock:
            seen = self.answers.setdefault((resource, state), [0, now])
            seen[0] += 1

    def detections(self) -> list[dict[str, object]]:
        """Per transition: when EC2 would have finished it, how late a client first saw it,
        and how many answers it took (the calls that saw the old state, plus that one)."""
        t = self.timing
        out: list[dict[str, object]] = []

        def add(wait: str, resource: str, old: str, new: str, due: float) -> None:
            seen = self.answers.get((resource, new))
            if seen:
                calls = int(self.answers.get((resource, old), [0])[0]) + 1
                out.append({"wait": wait, "resource": resource, "lag": seen[1] - due, "calls": calls})

        with self._lock:
            instances, images = dict(self.instances), dict(self.images)
        for iid, inst in instances.items():
            add("instance_running", iid, "pending", "running", inst.launched + t.pending)
            if self.ssh_first_forward is not None:
                out.append({"wait": "ssh_ready", "resource": iid, "calls": self.ssh_refused + 1,
                            "lag": self.ssh_first_forward - (inst.launched + t.pending + t.ssh_after_running)})
            if inst.stop_at is not None:
                add("instance_stopped", iid, "stopping", "stopped", inst.stop_at + t.stopping)
            if inst.terminate_at is not None:
                add("instance_terminated", iid, "shutting-down", "terminated", inst.terminate_at + t.shutting_down)
        for image_id, img in images.items():
            add("image_available", image_id, "pending", "available", img.created + img.duration)
        return out

    # -- what passes through ---------------------------------------------------------------
    def _observe(self, action: str, params: dict[str, str], body: bytes) -> None:
        now = time.monotonic()
        ids = [v for k, v in params.items() if k.startswith("InstanceId.")]
        with self._lock:
            if action == "RunInstances":
                for iid in re.findall(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", body):
                    self.instances.setdefault(iid.decode(), _Instance(launched=now))
            elif action == "StopInstances":
                for iid in ids:
                    if iid in self.instances:
                        self.instances[iid].stop_at = now
            elif action == "TerminateInstances":
                for iid in ids:
                    if iid in self.instances and self.instances[iid].terminate_at is None:
                        self.instances[iid].terminate_at = now
        if action == "CreateImage":
            found = re.search(rb"<imageId>(ami-[0-9a-f]+)</imageId>", body)
            if found:
                image_id = found.group(1).decode()
                gib, snaps = self._image_size(image_id, params.get("InstanceId", ""))
                with self._lock:
                    self.images[image_id] = _Image(now, self.timing.ami_base + self.timing.ami_per_gib * gib, snaps)

    def _image_size(self, image_id: str, instance_id: str) -> tuple[float, tuple[str, ...]]:
        """The builder's volume size (GiB) and the AMI's snapshots, asked of moto directly."""
        images = self._call({"Action": "DescribeImages", "ImageId.1": image_id})
        snaps = tuple(s.decode() for s in re.findall(rb"<snapshotId>(snap-[0-9a-f]+)</snapshotId>", images))
        sizes = [int(s) for s in re.findall(rb"<volumeSize>(\d+)</volumeSize>", images)]
        if not sizes and instance_id:
            vols = self._call({"Action": "DescribeVolumes", "Filter.1.Name": "attachment.instance-id",
                               "Filter.1.Value.1": instance_id})
            sizes = [int(s) for s in re.findall(rb"<size>(\d+)</size>", vols)]
        return float(sum(sizes) or 8), snaps

    def _call(self, params: dict[str, str]) -> bytes:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request("POST", "/", body=urlencode({**params, "Version": "2016-11-15"}),
                         headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": AUTH})
            return conn.getresponse().read()
        finally:
            conn.close()

    def _rewrite(self, action: str, body: bytes) -> bytes:
        now = time.monotonic()
        if action in ("DescribeInstances", "DescribeInstanceStatus"):
            def state(m: re.Match[bytes]) -> bytes:
                name = self.instance_state(m.group(2).decode(), m.group(5).decode(), now)
                self._answered(m.group(2).decode(), name, now)
                return m.group(1) + str(STATE_CODES.get(name, m.group(3))).encode() + m.group(4) + name.encode() + m.group(6)

            return re.sub(rb"(<instanceId>(i-[0-9a-f]+)</instanceId>.*?<instanceState>\s*<code>)(\d+)(</code>\s*<name>)([a-z-]+)(</name>)",
                          state, body, flags=re.S)
        if action == "DescribeImages":
            def image(m: re.Match[bytes]) -> bytes:
                pending = self.image_progress(m.group(2).decode(), now) is not None
                self._answered(m.group(2).decode(), "pending" if pending else m.group(3).decode(), now)
                return m.group(1) + (b"pending" if pending else m.group(3)) + m.group(4)

            return re.sub(rb"(<imageId>(ami-[0-9a-f]+)</imageId>.*?<imageState>)([a-z]+)(</imageState>)", image, body, flags=re.S)
        if action == "DescribeSnapshots":
            with self._lock:
                owner = {s: image_id for image_id, img in self.images.items() for s in img.snapshots}

            def snapshot(m: re.Match[bytes]) -> bytes:
                image_id = owner.get(m.group(2).decode())
                progress = self.image_progress(image_id, now) if image_id else None
                if progress is None:
                    return m.group(0)
                text = re.sub(rb"<status>[a-z]+</status>", b"<status>pending</status>", m.group(0))
                return re.sub(rb"<progress>[^<]*</progress>", f"<progress>{int(progress * 100)}%</progress>".encode(), text)

            return re.sub(rb"(<snapshotId>(snap-[0-9a-f]+)</snapshotId>.*?</progress>)", snapshot, body, flags=re.S)
        return body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        clock = self

        class Handler(relay.QuietHandler):
            def _relay(self) -> None:
                body, action, params = relay.read_request(self)
                status, headers, data = relay.forward(clock.upstream, self, body)
                if status == 200 and action:
                    clock._observe(action, params, data)
                    data = clock._rewrite(action, data)
                relay.respond(self, status, headers, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        return Handler

    # -- the SSH gate ----------------------------------------------------------------------
    def _serve_gate(self) -> None:
        assert self._gate is not None and self._ssh_upstream is not None
        while True:
            try:
                client, _ = self._gate.accept()
            except OSError:
                return  # closed by stop()
            if not self.ssh_open():
                self.ssh_refused += 1
                # A reset, as a booting instance's closed port answers (linger 0 sends RST).
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                server = socket.create_connection(self._ssh_upstream, timeout=10)
            except OSError:
                client.close()
                continue
            if self.ssh_first_forward is None:
                self.ssh_first_forward = time.monotonic()
            for s in (client, server):  # forward each chunk as it comes (see http_relay.QuietHandler)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        src.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="EC2-shaped timing in front of the sandbox's moto and sshd")
    parser.add_argument("--upstream", required=True, help="moto's URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--ssh", help="the builder's sshd as HOST:PORT (the gate forwards to it)")
    for f in fields(Timing):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=f.default, help=f"seconds (default {f.default})")
    args = parser.parse_args()
    ssh = None
    if args.ssh:
        host, _, port = args.ssh.rpartition(":")
        ssh = (host, int(port))
    timing = Timing(**{f.name: getattr(args, f.name) for f in fields(Timing)})
    clock = Ec2Clock(args.upstream, timing, ssh).start()
    print(f"AWS_ENDPOINT_URL={clock.url}", flush=True)
    if clock.ssh_port:
        print(f"ssh_host = \"127.0.0.1:{clock.ssh_port}\"", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        clock.stop()


if __name__ == "__main__":
    main()
