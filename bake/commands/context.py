"""What every command module is, and what it is handed besides its arguments."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Protocol

from bake.cancel import CancelToken


@dataclass
class Context:
    """The run's shared state: the token the signal handlers cancel."""

    cancel: CancelToken = field(default_factory=CancelToken)


class Command(Protocol):
    """A module of ``bake/commands/``: it adds its sub-parser and runs with the parsed arguments."""

    def add_parser(self, sub: argparse._SubParsersAction) -> None: ...

    def run(self, args: argparse.Namespace, ctx: Context) -> int: ...
