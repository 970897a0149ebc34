"""``python -m bake sandbox relay --target INSTANCE_ID``: the sandbox's stand-in for
``aws ssm start-session --document-name AWS-StartSSHSession``, for ``ssh_proxy_command``.

Like Session Manager it is addressed by instance id, refuses an instance that is not running
(asking moto, as SSM asks its agent), and carries the SSH stream on stdin/stdout to the
builder's sshd, which in the sandbox is one fixed port on loopback. It ends when either side
closes, so it never outlives the bake that started it by more than its stdin.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from bake_sandbox.layout import HOST, REGION, Layout

CHUNK = 65536


def _pump_in(sock: socket.socket) -> None:
    while data := os.read(0, CHUNK):
        sock.sendall(data)
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(target: str, layout: Layout | None = None) -> int:
    import boto3

    layout = layout or Layout.from_env()
    ec2 = boto3.client("ec2", endpoint_url=layout.moto_endpoint, region_name=REGION)
    try:
        states = [i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=[target])["Reservations"]
                  for i in r["Instances"]]
    except Exception as e:  # noqa: BLE001 - said on stderr, as SSM would
        sys.stderr.write(f"relay: {target}: {e}\n")
        return 254
    if states != ["running"]:
        sys.stderr.write(f"relay: {target} is not running ({', '.join(states) or 'no such instance'})\n")
        return 254
    sock = socket.create_connection((HOST, layout.ssh_port), timeout=10)
    sock.settimeout(None)
    threading.Thread(target=_pump_in, args=(sock,), daemon=True).start()
    while data := sock.recv(CHUNK):
        os.write(1, data)
    return 0
