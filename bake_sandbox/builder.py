"""The builder host: user ``ec2-user`` reached over real OpenSSH on 127.0.0.1:SSH_PORT.

It stands in for the EC2 instance a bake launches. Login works the way EC2's does:
sshd asks an ``AuthorizedKeysCommand`` for the user's keys, and that script prints the public
keys of the key pairs attached to moto's pending and running instances, so a bake's temporary
key logs in while its instance runs and is refused once it is terminated. sshd runs inside a
private mount namespace with overlays over /etc, /home, /root and /var (see ``overlay``), so a
bake's pre-snapshot clean-up cannot damage this machine, which the builder really is.
The host's own sshd and /etc/ssh are never touched.
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import stat
import sys
from pathlib import Path

from bake_sandbox import node_containerd, overlay
from bake_sandbox.errors import SandboxError
from bake_sandbox.layout import CREDENTIALS, HOST, REGION, SSH_USER, Layout
from bake_sandbox.process import Daemon, port_open, run

SUDOERS = Path("/etc/sudoers.d/bake-sandbox-ec2-user")
SSHD = "/usr/sbin/sshd"

KEYS_SCRIPT = '''#!{python}
# Written by `python -m bake sandbox up`: sshd's AuthorizedKeysCommand for the sandbox builder.
# Prints the public keys of the key pairs attached to moto's pending/running instances, as
# cloud-init would have installed them on a real instance. Prints nothing when moto is down.
# Besides the sandbox's moto it asks every moto registered in EXTRA (one JSON file each:
# endpoint, access_key_id, secret_access_key): a test's private IAM-enforcing moto, whose
# builders log in here too (bake_sandbox.iam_moto). Those calls are signed (SigV4), as that
# moto checks signatures.
# Standard library only, no boto3: sshd runs this at every login, and importing boto3 cost
# about half a second each time (a login on EC2 reads a file).
import datetime
import hashlib
import hmac
import json
import pathlib
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

USER = {user!r}
ENDPOINT = {endpoint!r}
EXTRA = pathlib.Path({extra!r})
REGION = {region!r}
# moto reads the region from the credential scope and checks no signature.
AUTH = "AWS4-HMAC-SHA256 Credential={key}/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed(endpoint, body, key_id, secret):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = urllib.parse.urlsplit(endpoint).netloc
    headers = {{"content-type": "application/x-www-form-urlencoded", "host": host, "x-amz-date": stamp}}
    names = ";".join(sorted(headers))
    canonical = "\\n".join(["POST", "/", "", *(f"{{k}}:{{headers[k]}}" for k in sorted(headers)), "", names,
                           hashlib.sha256(body).hexdigest()])
    scope = f"{{day}}/{{REGION}}/ec2/aws4_request"
    to_sign = "\\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (REGION, "ec2", "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {{"Content-Type": headers["content-type"], "X-Amz-Date": stamp,
             "Authorization": f"AWS4-HMAC-SHA256 Credential={{key_id}}/{{scope}}, SignedHeaders={{names}}, Signature={{signature}}"}}


def call(target, params):
    endpoint, creds = target
    body = urllib.parse.urlencode({{**params, "Version": "2016-11-15"}}).encode()
    headers = signed(endpoint, body, *creds) if creds else {{
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": AUTH}}
    req = urllib.request.Request(endpoint.rstrip("/") + "/", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return ET.fromstring(resp.read())


def texts(root, name):
    return [el.text for el in root.iter() if el.tag.rsplit("}}", 1)[-1] == name and el.text]


def targets():
    yield ENDPOINT, None
    for f in sorted(EXTRA.glob("*.json")) if EXTRA.is_dir() else []:
        try:
            d = json.loads(f.read_text())
            yield d["endpoint"], (d["access_key_id"], d["secret_access_key"])
        except (OSError, ValueError, KeyError) as e:
            print(f"bake-sandbox authorized-keys: {{f}}: {{e}}", file=sys.stderr)


def instances(root):
    """(instance id, key name) of every instance in a DescribeInstances answer."""
    for el in root.iter():
        if el.tag.rsplit("}}", 1)[-1] != "item":
            continue
        ids, names = [], []
        for child in el:
            tag = child.tag.rsplit("}}", 1)[-1]
            (ids if tag == "instanceId" else names if tag == "keyName" else []).append(child.text)
        if ids and names and names[0]:
            yield ids[0], names[0]


def keys(target):
    running = call(target, {{"Action": "DescribeInstances", "Filter.1.Name": "instance-state-name",
                             "Filter.1.Value.1": "pending", "Filter.1.Value.2": "running"}})
    for instance, name in sorted(set(instances(running))):
        try:
            pairs = call(target, {{"Action": "DescribeKeyPairs", "KeyName.1": name, "IncludePublicKey": "true"}})
        except urllib.error.HTTPError:  # the key pair was deleted while its instance still runs
            continue
        # Which instance logged in: the node's containerd stand-in keeps its state per instance
        # (every sandbox instance shares this one builder; see bake_sandbox/node_containerd.py).
        for key in texts(pairs, "publicKey"):
            print(f'environment="BAKE_SANDBOX_INSTANCE={{instance}}" {{key.strip()}}')


if len(sys.argv) < 2 or sys.argv[1] != USER:
    sys.exit(0)
for target in targets():
    try:
        keys(target)
    except Exception as e:
        print(f"bake-sandbox authorized-keys: {{target[0]}}: {{e}}", file=sys.stderr)
'''

SSHD_CONFIG = """# Written by `python -m bake sandbox up`: the sandbox builder's sshd, not the host's.
Port {port}
ListenAddress {host}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile none
AuthorizedKeysCommand {keys_script} %u
AuthorizedKeysCommandUser root
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {user}
UsePAM no
PermitUserEnvironment BAKE_SANDBOX_INSTANCE
PrintMotd no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def _paths(layout: Layout) -> dict[str, Path]:
    d = layout.ssh_dir
    return {"config": d / "sshd_config", "host_key": d / "ssh_host_ed25519_key", "keys_script": d / "authorized-keys"}


def extra_endpoints_dir(layout: Layout) -> Path:
    """Where other moto servers are registered for the keys command (see KEYS_SCRIPT).

    Under /run, which sshd's mount namespace shares with the host: in the overlaid /var, a file
    made after sshd started may never show (overlayfs does not follow changes to its lower layer).
    One folder per sandbox (its ssh port), root's only."""
    return Path("/run/bake-sandbox") / f"ssh-{layout.ssh_port}-moto-endpoints.d"


def keys_command_serves_extra_endpoints(layout: Layout) -> bool:
    """Whether the running sandbox's keys command reads ``extra_endpoints_dir`` (a sandbox
    started by an older version does not: ``sandbox down && sandbox up`` rewrites it)."""
    try:
        return str(extra_endpoints_dir(layout)) in _paths(layout)["keys_script"].read_text()
    except OSError:
        return False


def daemon(layout: Layout) -> Daemon:
    p = _paths(layout)
    # The sandbox's own state dir stays the real one in the builder's view (the node's containerd
    # and its systemctl stand-in keep their disk, pid file and bookkeeping there, and the host
    # reads them); /var/lib/containerd is the node's containerd root, apart from this machine's
    # (node_containerd). The state dir is held at a mount point outside the overlays before they
    # are mounted: a path under /var bound after would name the overlay's copy of it.
    root, handle = shlex.quote(str(layout.root)), f"/run/bake-sandbox/state-{layout.ssh_port}"
    node_root = shlex.quote(str(node_containerd.root_dir(layout)))
    mounts = " && ".join(["mkdir -p /run/sshd", f"mkdir -p {handle} && mount --bind {root} {handle}",
                          *overlay.mount_commands(layout), f"mount --bind {handle} {root}",
                          f"mkdir -p /var/lib/containerd && mount --bind {node_root} /var/lib/containerd"])
    script = f"{mounts} && exec {SSHD} -D -f {shlex.quote(str(p['config']))} -E {shlex.quote(str(layout.run_dir / 'sshd.log'))}"
    return Daemon("sshd", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                  layout.run_dir, program=str(p["config"]))


def sudoers_text(layout: Layout) -> str:
    # The node's binaries (its containerd, ctr, systemctl) first on sudo's PATH, as they are on a
    # node's; the instance that logged in reaches the systemctl stand-in through sudo.
    path = ":".join([str(node_containerd.bin_dir(layout)), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                     "/sbin", "/bin"])
    return (f"# bake sandbox: passwordless sudo, as on EKS AMIs\n{SSH_USER} ALL=(ALL) NOPASSWD:ALL\n"
            f'Defaults:{SSH_USER} secure_path="{path}"\n'
            f'Defaults:{SSH_USER} env_keep += "BAKE_SANDBOX_INSTANCE"\n')


def ensure_user(layout: Layout) -> None:
    try:
        pwd.getpwnam(SSH_USER)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/bash", SSH_USER], f"create user {SSH_USER}")
    # A new user is locked ('!'); '*' allows key logins and still no password.
    run(["usermod", "-p", "*", SSH_USER], f"unlock {SSH_USER}")
    text = sudoers_text(layout)
    if not SUDOERS.exists() or SUDOERS.read_text() != text:
        tmp = SUDOERS.with_name(".bake-sandbox.tmp")
        tmp.write_text(text)
        tmp.chmod(0o440)
        run(["visudo", "-cf", str(tmp)], "check sudoers entry")
        os.replace(tmp, SUDOERS)


def _check_safe_chain(path: Path) -> None:
    """sshd runs an AuthorizedKeysCommand only if it and every parent dir are root-owned and not
    group/world-writable; say so up front instead of every login failing silently."""
    for p in [path, *path.parents]:
        st = p.stat()
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise SandboxError(
                f"sshd will not run {path}: {p} is not root-owned or is group/world-writable "
                "(put BAKE_SANDBOX_DIR under a root-owned path such as /var/lib)"
            )


def serve_extra_endpoints(layout: Layout) -> None:
    """Make the running sshd's keys command one that reads ``extra_endpoints_dir``. A sandbox
    started by an older checkout has another: then sshd is restarted, which rewrites it. Only a
    restart will do: sshd sees /var through its overlay, which may keep showing the old file
    after the host's is replaced. Call it under the sandbox lock (logins fail while it restarts)."""
    pid = daemon(layout).pid()
    script = _paths(layout)["keys_script"]
    try:
        fresh = pid is not None and script.stat().st_mtime <= _started_at(pid)
    except (OSError, ValueError):
        fresh = False
    if fresh and keys_command_serves_extra_endpoints(layout):
        return
    stop(layout)
    start(layout)
    if not keys_command_serves_extra_endpoints(layout):
        raise SandboxError(f"{script}: the keys command does not read {extra_endpoints_dir(layout)}")


def _started_at(pid: int) -> float:
    """When process ``pid`` started (epoch seconds): its start tick after boot, plus boot time."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def write_keys_command(layout: Layout) -> None:
    """(Re)write sshd's AuthorizedKeysCommand (sshd runs it at every login)."""
    path = _paths(layout)["keys_script"]
    tmp = path.with_name(".authorized-keys.tmp")
    tmp.write_text(KEYS_SCRIPT.format(
        python=sys.executable, user=SSH_USER, region=REGION, endpoint=layout.moto_endpoint + "/",
        extra=str(extra_endpoints_dir(layout)), key=CREDENTIALS["AWS_ACCESS_KEY_ID"]))
    tmp.chmod(0o755)
    os.replace(tmp, path)


def configure(layout: Layout) -> None:
    p = _paths(layout)
    layout.ssh_dir.mkdir(parents=True, exist_ok=True)
    if not p["host_key"].exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bake-sandbox-builder", "-f", str(p["host_key"])],
            "make sshd host key")
    write_keys_command(layout)
    p["config"].write_text(SSHD_CONFIG.format(
        port=layout.ssh_port, host=HOST, host_key=p["host_key"], pid_file=layout.run_dir / "sshd.own.pid",
        keys_script=p["keys_script"], user=SSH_USER))
    _check_safe_chain(p["keys_script"])
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    run([SSHD, "-t", "-f", str(p["config"])], "check sshd config")


def start(layout: Layout) -> None:
    d = daemon(layout)
    if d.running():
        return
    if port_open(HOST, layout.ssh_port):
        raise SandboxError(f"sshd: {HOST}:{layout.ssh_port} is taken by another process (set BAKE_SANDBOX_SSH_PORT)")
    ensure_user(layout)
    overlay.ensure(layout)
    node_containerd.ensure(layout)
    configure(layout)
    d.start()
    d.wait_ready(lambda: _banner(layout.ssh_port), timeout=30, what=f"answering SSH on {layout.ssh_host}")


def _banner(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.settimeout(2)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def host_public_key(layout: Layout) -> str:
    return (_paths(layout)["host_key"].with_suffix(".pub")).read_text().strip()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop(layout: Layout) -> None:
    stop_daemon(daemon(layout))


def stop_daemon(d: Daemon) -> None:
    """Stop an sshd and the sessions it started."""
    pid = d.pid()
    if pid is not None:
        # Open sessions run in sessions of their own: a signal to sshd's group misses them.
        for child in _descendants(pid):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
    d.stop()


def remove_sudoers() -> None:
    SUDOERS.unlink(missing_ok=True)


def status(layout: Layout) -> str:
    return "up" if daemon(layout).running() and _banner(layout.ssh_port) else "down"


__all__ = ["start", "stop", "status", "ensure_user", "host_public_key", "remove_sudoers"]
