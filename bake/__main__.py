from bake.cli import entry

entry()
