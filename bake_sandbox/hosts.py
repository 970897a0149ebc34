"""The ECR look-alike's name in /etc/hosts: one marked line, added by ``up``, removed by ``down``.

The file is rewritten in place rather than replaced, because in containers /etc/hosts is often
a bind mount that a rename would break. Only the marked line is ever touched.
"""

from __future__ import annotations

from pathlib import Path

HOSTS = Path("/etc/hosts")
MARK = "# bake-sandbox"


def _line(name: str, address: str) -> str:
    return f"{address}\t{name}\t{MARK}"


def present(name: str, address: str = "127.0.0.1", hosts: Path = HOSTS) -> bool:
    return _line(name, address) in hosts.read_text().splitlines()


def add(name: str, address: str = "127.0.0.1", hosts: Path = HOSTS) -> None:
    lines = [ln for ln in hosts.read_text().splitlines() if not ln.endswith(MARK)]
    new = [*lines, _line(name, address)]
    if new != hosts.read_text().splitlines():
        hosts.write_text("\n".join(new) + "\n")


def remove(hosts: Path = HOSTS) -> None:
    text = hosts.read_text()
    lines = [ln for ln in text.splitlines() if not ln.endswith(MARK)]
    if lines != text.splitlines():
        hosts.write_text("\n".join(lines) + "\n")
