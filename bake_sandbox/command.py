"""``python -m bake sandbox up|down|env|status|path``: the local stand-in for AWS.

``eval "$(python -m bake sandbox env)"`` points boto3, terraform and bake at it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from bake.commands.context import Context
from bake.errors import ExitCode, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sandbox",
        help="run the local sandbox (moto, registries, containerd/dockerd, an SSH builder) the demo and tests use",
        description="The local stand-in for AWS, on loopback only. Needs root. State: /var/lib/bake-sandbox "
        "(BAKE_SANDBOX_DIR); ports: BAKE_SANDBOX_MOTO_PORT (45000), BAKE_SANDBOX_SSH_PORT (45022), "
        "BAKE_SANDBOX_REGISTRY_PORT (45443); the ECR look-alike is on 127.0.0.1:443.",
    )
    p.add_argument("action", choices=["up", "down", "env", "status", "path", "restart-runtime", "relay"],
                   help="up: start (idempotent); down: stop and remove; env: print exports for eval; "
                        "status: each component; path: the state dir; restart-runtime docker|containerd: "
                        "what `systemctl restart` is on a builder (GPU tests, see docs/gpu.md); "
                        "relay --target ID: an ssh_proxy_command to a running builder, as SSM's "
                        "AWS-StartSSHSession (pool: ssh_proxy_command = \"python -m bake sandbox relay --target %%i\")")
    p.add_argument("--purge", action="store_true",
                   help="for down: also remove every image pulled from the sandbox's registries from containerd "
                        "and dockerd, and the registries' storage (the next up pushes the samples again)")
    p.add_argument("--target", metavar="INSTANCE_ID", help="for relay: the builder's instance id (%%i)")
    p.add_argument("runtime", nargs="?", choices=["docker", "containerd"], help="for restart-runtime")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="number of sample images (default 8, env BAKE_SANDBOX_IMAGES)")
    p.add_argument("--image-mb", type=float, default=None, metavar="MB",
                   help="size of each sample image (default 10, env BAKE_SANDBOX_IMAGE_MB)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "relay":
        from bake_sandbox.relay import relay

        if not args.target:
            sys.stderr.write("sandbox: relay needs --target INSTANCE_ID\n")
            return int(ExitCode.USAGE)
        return relay(args.target)
    try:
        import moto  # noqa: F401 - the sandbox's stand-in for AWS, an extra of the package
    except ImportError:
        raise UsageError("the sandbox needs moto, which a plain install leaves out: "
                         "pip install 'eks-image-bake[sandbox]'") from None
    from bake_sandbox import Sandbox  # only this command pays for the sandbox's imports

    sandbox = Sandbox(image_count=args.images, image_mb=args.image_mb)

    def say(message: str) -> None:
        sys.stderr.write(f"sandbox: {message}\n")

    if args.action == "path":
        print(sandbox.layout.root)
    elif args.action == "env":
        for key, value in sandbox.env().items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.action == "status":
        status = sandbox.status()
        width = max(map(len, status))
        for name, state in status.items():
            print(f"{name:<{width}}  {state}")
        return int(ExitCode.OK if sandbox.is_up() else ExitCode.BAKE_FAILED)
    elif args.action == "up":
        t0 = time.monotonic()
        info = sandbox.up(log=say)
        say(f"up in {time.monotonic() - t0:.1f}s; config {info.config_path}")
        say('use it: eval "$(python -m bake sandbox env)"')
    elif args.action == "down":
        sandbox.down(log=say, purge=args.purge)
    elif args.action == "restart-runtime":
        from bake_sandbox.restart import restart_runtime

        if not args.runtime:
            say("restart-runtime needs docker or containerd")
            return int(ExitCode.USAGE)
        restart_runtime(sandbox.layout, args.runtime, log=say)
    return int(ExitCode.OK)
