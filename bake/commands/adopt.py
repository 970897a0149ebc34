"""``python -m bake adopt ASG_NAME [--pool NAME] [--launch template|configuration] [--image REF]...``."""

from __future__ import annotations

import argparse

from bake.commands._common import add_config_arg
from bake.commands.context import Context


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "adopt",
        help="write a pool that records a live Auto Scaling group's settings into bake.toml",
        description=(
            "Read the live Auto Scaling group and its active launch configuration or launch template "
            "version, and add a pool to bake.toml that records them (the file's other content and comments "
            "are kept): base_ami is that source's AMI, the instance settings go to [launch_template] "
            "(user data to userdata/POOL.txt beside the config, byte for byte), the group's own settings "
            "to [asg], and [adopt] tells the stack to import the group. The first plan then imports the "
            "group, creates the pool's launch template (or configuration) and switches the group to it, "
            "changing nothing else. Fill in images (or pass --image) and run `python -m bake build` first."
        ),
    )
    p.add_argument("asg_name", metavar="ASG_NAME")
    p.add_argument("--pool", metavar="NAME", help="the pool's name (default: the group's name, if valid)")
    p.add_argument("--launch", choices=["template", "configuration"], default="template",
                   help="what the stack manages for the group: a launch template (default) or, legacy, "
                        "a launch configuration")
    p.add_argument("--image", dest="images", action="append", default=[], metavar="REF",
                   help="an image to bake (repeatable); without it images = [] must be filled in")
    add_config_arg(p)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bake.adopt import adopt

    from bake.model.workspace import Workspace

    a = adopt(Workspace.of(args).config_path, args.asg_name, pool=args.pool, launch=args.launch, images=args.images)
    print(f"pool {a.pool}: adopted Auto Scaling group {a.asg_name} ({a.source}) into {a.config_path}")
    print(f"  base_ami = {a.base_ami} (the AMI it runs now)")
    if a.user_data_path is not None:
        print(f"  user data: {a.user_data_path}")
    for note in a.notes:
        print(f"  note: {note}")
    print("next:")
    if a.images_needed:
        print(f"  fill in pools.{a.pool}.images in {a.config_path} (the config is invalid until then)")
    print(f"  python -m bake build --pool {a.pool}")
    print(f"  cdktf diff (or python main.py + terraform plan): imports {a.asg_name}, creates the pool's launch "
          f"{a.launch}, switches the group to it, and changes nothing else")
    return 0
