"""``ssh_proxy_command``'s template: OpenSSH ProxyCommand tokens, substituted into an argv.

The template is split into words once, like a shell would (``shlex``), and ``%i`` (instance id),
``%h`` (host), ``%p`` (port), ``%r`` (user) and ``%%`` are substituted inside each word. The words
become the program's argv directly: no shell runs, so a value can never become a second word or
a command of its own. The values are also checked against what they can legitimately be.
Pure (no paramiko): the config validates templates with it.
"""

from __future__ import annotations

import re
import shlex

from bake.errors import BakeError

TOKEN = re.compile(r"%(.)")
KNOWN = {"i": "instance id", "h": "host", "p": "port", "r": "user"}
# What each value may be; anything else is refused before it reaches an argv.
SAFE_VALUE = {
    "i": re.compile(r"^i-[0-9a-f]{1,40}$"),
    "h": re.compile(r"^[A-Za-z0-9.:_][A-Za-z0-9.:_-]{0,252}$"),  # never a leading '-' (an option)
    "p": re.compile(r"^[0-9]{1,5}$"),
    "r": re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"),
}


def check_template(template: str) -> list[str]:
    """The template's words; ValueError naming what is wrong (an unknown %x, unbalanced quotes)."""
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise ValueError(f"cannot be split into words: {e}") from None
    if not words:
        raise ValueError("is empty")
    for word in words:
        for m in TOKEN.finditer(word):
            if m.group(1) not in KNOWN and m.group(1) != "%":
                raise ValueError(f"unknown token %{m.group(1)} (known: %i, %h, %p, %r, %%)")
        if "%" in TOKEN.sub("", word):
            raise ValueError(f"a lone % in {word!r} (write %% for a literal %)")
    return words


def expand(template: str, *, instance_id: str, host: str, port: int, user: str) -> list[str]:
    """The argv for one connection: each word of ``template`` with its tokens replaced."""
    values = {"i": instance_id, "h": host, "p": str(port), "r": user}
    for key, value in values.items():
        if not SAFE_VALUE[key].match(value):
            raise BakeError(f"ssh_proxy_command: refusing {KNOWN[key]} {value!r} for %{key}")

    def sub(m: re.Match[str]) -> str:
        return "%" if m.group(1) == "%" else values[m.group(1)]

    return [TOKEN.sub(sub, word) for word in check_template(template)]


def shown(argv: list[str]) -> str:
    """The argv as one line a user can paste into a shell (ssh -o ProxyCommand=...)."""
    return shlex.join(argv)
