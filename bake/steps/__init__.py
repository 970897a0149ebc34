"""The bake, one step per resource, each owning its undo (Packer's multistep, in Python)."""
