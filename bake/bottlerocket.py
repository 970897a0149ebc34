"""A Bottlerocket builder (``os = "bottlerocket"``, docs/data-volume.md "Bottlerocket").

Bottlerocket's host has no shell over SSH: its admin container does (enabled through the
instance's TOML user data, ``ADMIN_USER_DATA``; its sshd takes the EC2 key pair from IMDS), and
``sudo sheltie`` runs a command in the host's namespaces, where ``ctr``, ``systemctl`` and
containerd's socket are. Every command the bake runs as root goes through ``bake.ssh.sudo`` (or
starts ``sudo -n``): ``on_host`` turns exactly those into sheltie commands, in one place (the
connection applies it, ``bake.ssh.Connection(host=...)``), so the steps keep the host's paths.

Pure: no I/O.
"""

from __future__ import annotations

# [settings.host-containers.admin] enabled = true: the admin container is disabled by default
# (bottlerocket README "Admin container", read 2026-12-07). No admin user-data: without it the
# admin container's sshd takes the instance's EC2 key pair from IMDS (bottlerocket-admin-container
# README "Authenticating with the Admin Container"), which is the bake's temporary key pair.
ADMIN_USER_DATA = "[settings.host-containers.admin]\nenabled = true\n"

# sheltie with arguments runs `nsenter -t 1 -a -- "$@"` (bottlerocket-admin-container `sheltie`
# since 87bf395, 2021-11-19): the program is looked up in the host's filesystem, which has no
# shell. A script therefore runs under the admin container's static bash, reached from the host
# as sheltie itself reaches it without arguments: /proc/PID/root of an admin-container process
# (the PID namespace is shared). ``$$`` is expanded by the SSH session's own shell in the admin
# container, which stays alive (as sudo) while the command runs. The script then sees the host's
# mounts: /var/lib/containerd, /run/containerd/containerd.sock and the host's PATH.
SHELTIE = "sudo -n sheltie"
ADMIN_BASH = "/proc/$$/root/opt/bin/bash"
_SUDO = "sudo -n "
_SUDO_SH = "sudo -n sh "


def on_host(command: str) -> str:
    """``command`` as the admin container runs it in the host's namespaces: ``sudo -n sh ARGS``
    becomes sheltie running the admin container's bash with ARGS (``-c SCRIPT`` or ``-s`` with
    the script on stdin, which stays free for secrets); any other ``sudo -n PROGRAM ARGS`` runs
    the host's PROGRAM. Commands without sudo run in the admin container itself."""
    if command.startswith(_SUDO_SH):
        return f"{SHELTIE} {ADMIN_BASH} {command[len(_SUDO_SH):]}"
    if command.startswith(_SUDO):
        return f"{SHELTIE} {command[len(_SUDO):]}"
    return command
