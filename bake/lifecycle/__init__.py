"""The AMI lifecycle after a bake: ``prune`` old AMIs, ``sweep`` a killed build's leftovers.

Both find what this tool made by the tags in ``bake.tags`` and never touch anything else.
The CLI layer (``bake.commands.prune`` / ``sweep``) only parses flags and prints.
"""
