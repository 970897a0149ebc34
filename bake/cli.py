"""``python -m bake``: a thin layer that parses arguments, installs signal handlers and turns
library errors into messages and exit codes (see ``bake.errors.ExitCode``).

Each subcommand lives in ``bake/commands/NAME.py`` with ``add_parser(subparsers)`` and
``run(args, ctx) -> int`` (``bake.commands.context.Command``); this file only wires them.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from types import FrameType
from typing import NoReturn

from bake.commands import adopt, build, iam_policy, karpenter, plan, prune, review, rollback, sweep
from bake.commands.context import Command, Context
from bake.errors import BakeError, Cancelled, ExitCode

# Each module imports its library inside run(): `--help` loads none of them.
COMMANDS: dict[str, Command] = {
    "build": build, "plan": plan, "rollback": rollback, "adopt": adopt,
    "review": review, "prune": prune, "sweep": sweep, "iam-policy": iam_policy, "karpenter": karpenter,
}
# Commands other packages add through the "bake.commands" entry point: the sandbox's `sandbox`
# lives in bake_sandbox, which the product never imports (tests/unit/test_layering.py).
PLUGIN_GROUP = "bake.commands"


def commands() -> dict[str, Command]:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.load() for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}
    return {**COMMANDS, **plugins}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="python -m bake",
        description="Bake container images into EKS node AMIs and record them in amis.lock.json.",
        epilog=("Exit codes: 0 done, 1 a bake failed, 2 usage or config error, 4 `plan --check`: the lock is not "
                "current, 130 interrupted, 143 terminated."),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    found = commands()
    for command in found.values():
        command.add_parser(sub)
    return parser, found


def version() -> str:
    """The installed distribution's version, else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("eks-image-bake")
    except PackageNotFoundError:
        from bake import __version__

        return __version__


def _install_signals(ctx: Context) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if ctx.cancel.cancelled:
            pending = ctx.cancel.pending_cleanups()
            what = "; ".join(pending) if pending else "finishing"
            sys.stderr.write(f"\nbake: still cleaning up, please wait: {what}\n")
            return
        ctx.cancel.cancel(signum)
        name = signal.Signals(signum).name
        sys.stderr.write(f"\nbake: {name} received: stopping and removing what this run created\n")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help and --version
        return int(e.code or 0)
    if args.command is None:  # a bare `python -m bake` launches nothing: it says what it can do
        parser.print_help(sys.stderr)
        return int(ExitCode.USAGE)
    ctx = Context()
    _install_signals(ctx)
    from bake.iam.refusal import set_command

    set_command(args.command)
    try:
        return int(modules[args.command].run(args, ctx))
    except Cancelled as e:
        sys.stderr.write(f"bake: interrupted ({signal.Signals(e.signum).name}); cleanup done\n")
        return int(e.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BakeError as e:
        sys.stderr.write(f"bake: error: {e}\n")
        return int(e.exit_code)
    except Exception as e:  # an AWS, SSH or registry error no step turned into a BakeError
        message = one_line(e)
        if message is None:
            raise
        sys.stderr.write(f"bake: error: {message}\n")
        return int(ExitCode.BAKE_FAILED)


def one_line(exc: Exception) -> str | None:
    """The one-line message for an AWS, SSH or registry error that reached the CLI, naming the
    call and what came back; None for anything else (a bug: its traceback is worth seeing).
    A library that is not loaded cannot have raised: only loaded ones are asked."""
    if "botocore" in sys.modules:
        from bake.aws import describe_error

        if message := describe_error(exc):
            return message
    if "paramiko" in sys.modules:
        from bake.lean_paramiko import paramiko

        if isinstance(exc, paramiko.SSHException):
            return f"SSH: {type(exc).__name__}: {exc}"
    if "requests" in sys.modules:
        import requests

        if isinstance(exc, requests.RequestException):
            call = f"{exc.request.method} {exc.request.url}: " if exc.request is not None else ""
            return f"registry: {call}{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):  # a connection refused or reset, a timeout, outside any step's handling
        return f"{type(exc).__name__}: {exc}"
    return None


def entry() -> NoReturn:
    """The process's entry point (``python -m bake``, the ``bake`` script): ``main``, then the
    exit. Most of the heap is long-lived (the modules, botocore's service models), which the
    garbage collector keeps scanning for nothing: at the default threshold (700 allocations)
    it ran about 260 times while a bake started (0.12 s, measured), at 10,000 it runs 18
    (0.04 s). Freezing the heap before the exit spares the interpreter's last collections
    over all of it (about 0.2 s). Objects are still released and atexit still runs."""
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    code = main()
    gc.freeze()
    raise SystemExit(code)
