"""paramiko's log goes to the run directory, not stderr (bake.rundir.RunDir.captured)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support.cli import ROOT

# A builder whose sshd closes the connection before its banner (as a booting one does): paramiko
# logs "Exception (client): Error reading SSH protocol banner" as an ERROR with a traceback.
SCRIPT = textwrap.dedent("""
    import socket, sys, threading
    from pathlib import Path
    from bake.cancel import CancelToken
    from bake.lean_paramiko import paramiko
    from bake.rundir import RunDir
    from bake.ssh import Connection, HostKeyCheck

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    def answer():
        while True:
            c, _ = server.accept()
            c.close()
    threading.Thread(target=answer, daemon=True).start()
    run_dir = RunDir(Path(sys.argv[1]))
    conn = Connection("127.0.0.1", server.getsockname()[1], "ec2-user", paramiko.RSAKey.generate(1024),
                      HostKeyCheck(None, lambda fp: None), CancelToken())
    with run_dir.captured("paramiko"):
        try:
            conn._connect_once()
        except Exception as e:
            print("failed:", type(e).__name__)
""")


def test_a_bad_banner_is_logged_to_the_run_directory_not_stderr(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(run)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("failed: SSHException"), (r.stdout, r.stderr)
    assert r.stderr == "", r.stderr  # before: paramiko's ERROR and its traceback, through Python's last resort
    log = (run / "paramiko.log").read_text()
    assert "ERROR paramiko.transport" in log and "Error reading SSH protocol banner" in log
    assert oct((run).stat().st_mode & 0o777) == "0o700"


def test_nothing_logged_leaves_no_file(tmp_path):
    from bake.rundir import RunDir

    with RunDir(tmp_path / "run").captured("paramiko") as path:
        pass
    assert not path.exists() and not (tmp_path / "run").exists()
