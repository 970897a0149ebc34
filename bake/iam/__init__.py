"""Least privilege: the IAM policy each use of the tool needs, scoped to a ``bake.toml``.

``grants`` is the table (code path -> actions, resources, conditions); ``policy`` renders it for
one role and one config; ``refusal`` turns an AccessDenied into the message that names the role.
"""
